"""Config: where the YAML lives (``conf_dir``), the typed configs every stage, runtime and measurement option is
declared in, and the errors that name a bad key. ``pipeline.plan.validate`` turns a composed config into a plan.
"""
from compressbench.config.schema import (
    SLUG,
    BadValue,
    ConfigError,
    Experiments,
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

__all__ = ["SLUG", "BadValue", "ConfigError", "Experiments", "MeasureConfig", "RuntimeConfig", "StageConfig", "TrainConfig",
           "check", "check_weights_file", "conf_dir", "is_safe_slug", "resolve_path", "safe_slug", "to_dict"]
