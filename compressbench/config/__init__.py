"""Config: where the YAML lives (``conf_dir``), the typed configs every stage, runtime and measurement option is
declared in, the ``Plan`` that ``pipeline.plan.validate`` builds from a composed config, and the errors that name
a bad key.
"""
from compressbench.config.plan import Experiments, Plan
from compressbench.config.schema import (
    SLUG,
    BadValue,
    ConfigError,
    MeasureConfig,
    RuntimeConfig,
    StageConfig,
    check,
    check_weights_file,
    conf_dir,
    is_safe_slug,
    register_resolvers,
    resolve_path,
    safe_slug,
    to_dict,
)
from compressbench.config.train import TrainConfig

register_resolvers()

__all__ = ["SLUG", "BadValue", "ConfigError", "Experiments", "MeasureConfig", "Plan", "RuntimeConfig", "StageConfig", "TrainConfig",
           "check", "check_weights_file", "conf_dir", "is_safe_slug", "resolve_path", "safe_slug", "to_dict"]
