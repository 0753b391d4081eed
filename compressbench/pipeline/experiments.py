"""Other experiments, composed and keyed as this pipeline does it (``config.Experiments``): how a distill
stage finds a teacher trained by another experiment, at config time and in its cache key."""
from __future__ import annotations

from collections.abc import Sequence

from compressbench.config import ConfigError, Plan, conf_dir


def known_experiments() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))


def compose_experiment(name: str, overrides: Sequence[str]) -> Plan:
    """Compose ``+experiment=name`` with ``overrides`` the way the CLI does, and validate it.

    Inside a running Hydra app (the CLI) Hydra is initialised with the user's search path (``--config-dir``),
    so their own experiments are found too; elsewhere the packaged configs are used.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from compressbench.pipeline.plan import validate

    args = [f"+experiment={name}", *overrides]
    try:
        if GlobalHydra.instance().is_initialized():
            cfg = compose("config", overrides=args)
        else:
            with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
                cfg = compose("config", overrides=args)
    except HydraException as e:
        raise ConfigError(f"distill.teacher.experiment={name!r} with overrides {list(overrides)} does not "
                          f"compose: {str(e).splitlines()[0]}; packaged experiments: "
                          f"{', '.join(known_experiments())}") from None
    return validate(cfg)


class PackagedExperiments:
    """``config.Experiments`` over the packaged configs (and, inside the CLI, the user's search path)."""

    def compose(self, name: str, overrides: Sequence[str]) -> Plan:
        return compose_experiment(name, overrides)

    def stage_key(self, plan: Plan, stage: str, fingerprint: str) -> str:
        from compressbench.pipeline.keys import chain_keys

        return chain_keys(plan, fingerprint)[plan.chain.index(stage) + 1]


EXPERIMENTS = PackagedExperiments()
