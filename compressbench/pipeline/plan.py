"""``validate(cfg)``: every config check before any work, turned into the typed ``Plan`` the pipeline walks.

Each stage kind declares a dataclass of its options next to its function; ``validate`` builds every typed config
(running the range checks in ``__post_init__``), checks the reference stage and the analyses, then the model and
dataset names, the installed runtimes and each stage kind's whole-chain checks (``StageKind.check_plan``) — all before any data
is loaded or any model trained.

In two steps, so that most mistakes cost no torch import: ``precheck`` is everything the config alone answers
(keys, values, ranges, chain, stage kinds and method names; the modules it reads import no torch), and the rest
needs the model zoo, the dataset loaders and the runtimes, which import torch. ``python -m compressbench`` runs
``precheck`` before it imports the runner, so a typo fails in a fraction of a second.
"""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from compressbench.config import (
    SLUG,
    BadValue,
    ConfigError,
    MeasureConfig,
    Plan,
    RuntimeConfig,
    StageConfig,
    check,
    check_weights_file,
    conf_dir,
    is_safe_slug,
    resolve_path,
    to_dict,
)


def typed(schema: type, node: Any, key: str) -> Any:
    """Merge ``node`` into the dataclass ``schema`` and instantiate it (runs its ``__post_init__`` checks)."""
    try:
        if isinstance(node, DictConfig):  # resolve ${...} against the whole config before detaching the node
            node = OmegaConf.to_container(node, resolve=True)
        merged = OmegaConf.merge(OmegaConf.structured(schema), node if node is not None else {})
        return OmegaConf.to_object(merged)
    except BadValue as e:
        raise e.under(key) from None
    except ConfigError:
        raise
    except OmegaConfBaseException as e:
        raise ConfigError(f"{key}: {e.msg if hasattr(e, 'msg') else e}") from None
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None


def cap_epochs(node: Any, cap: int) -> Any:
    """A copy of the options ``node`` with at most ``cap`` epochs for every training it holds (its own, a prune's
    retrain, a distill's hint phase); 0 (post-training) stays 0, and a warm-up is cut to the epochs left."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            changes[f.name] = cap_epochs(value, cap)
        elif f.name in ("epochs", "hint_epochs") and isinstance(value, int) and value > cap:
            changes[f.name] = cap
    epochs = changes.get("epochs", getattr(node, "epochs", 0))
    if getattr(node, "warmup_epochs", 0) > epochs:  # still within the (capped) run: one replace, one check
        changes["warmup_epochs"] = float(epochs)
    return dataclasses.replace(node, **changes) if changes else node


def same_debug_for_teachers(scfg: StageConfig, max_epochs: int | None, limit: int | None) -> StageConfig:
    """A teacher taken from another experiment is trained as this run is: under ``+debug=smoke`` its epochs are
    capped and its images limited alike (else its data differ from ours and it is refused, or it would train in
    full). Added to ``teacher.overrides``, so they are part of the distill stage's key. Returns a copy."""
    teacher = getattr(scfg, "teacher", None)
    if teacher is None or getattr(teacher, "experiment", None) is None:
        return scfg
    given = {o.lstrip("+").split("=", 1)[0] for o in teacher.overrides}
    added = [f"++{key}={value}" for key, value in (("runtime.max_epochs", max_epochs), ("dataset.limit", limit))
             if value is not None and key not in given]
    if not added:
        return scfg
    return dataclasses.replace(scfg, teacher=dataclasses.replace(teacher, overrides=[*teacher.overrides, *added]))


def validate(cfg: DictConfig) -> Plan:
    """Check the whole config before any work; raise ConfigError (or UnknownNameError) with what to do. ``cfg``
    is not changed: what the checks resolve (installed runtimes, ...) is in the returned plan."""
    plan = precheck(cfg)
    # Then what needs the model zoo, the loaders and the runtimes (they import torch), and the whole-chain checks.
    from compressbench.data import check_dataset
    from compressbench.models import check_model_config
    from compressbench.runtimes import RUNTIMES, fp32_routes
    from compressbench.stages import STAGES

    check_model_config(plan.model)
    try:  # its options only: a config is checked on machines that do not hold the data (the run checks files)
        check_dataset(plan.dataset, "", files=False)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if plan.init_from:  # read now (weights only); its shapes are checked on the built model, before training
        check_weights_file("init_from", plan.init_from)
    measure = plan.measure
    routes = fp32_routes(installed=True) if measure.fp32_routes is None else list(measure.fp32_routes)
    for route in routes:
        check(route in fp32_routes(), "measure.fp32_routes", measure.fp32_routes,
              f"a list drawn from {', '.join(fp32_routes())}, or null for every installed one")
        check(RUNTIMES.get(route).available(), "measure.fp32_routes", measure.fp32_routes,
              f"installed runtimes only: {route} needs {RUNTIMES.get(route).install_hint()}")
    plan = dataclasses.replace(plan, measure=dataclasses.replace(measure, fp32_routes=routes))
    for name, scfg in plan.stages.items():  # e.g. a distill teacher's stage, quantize's timing routes
        resolved = STAGES.get(scfg.stage).check_plan(scfg, name, plan, EXPERIMENTS)
        if resolved is not scfg:  # later checks see what this one resolved
            plan = dataclasses.replace(plan, stages={**plan.stages, name: resolved})
    return plan


def precheck(cfg: DictConfig) -> Plan:
    """The checks the config alone answers, without importing torch: the typed plan, its model, dataset and
    runtime names not yet checked against their registries (``validate`` does that)."""
    from compressbench.pipeline.objective import check_objective
    from compressbench.stages import STAGES
    from compressbench.stages.order import check_order
    from compressbench.tracking import check_logger

    name = cfg.get("name", "default")  # it becomes folders (run dir, findings/<name>): one component, never a path
    check(is_safe_slug(name), "name", name, f"one folder name: {SLUG}")
    limit = cfg.dataset.get("limit")
    check(limit is None or (isinstance(limit, int) and limit >= 1), "dataset.limit", limit,
          "null (every image) or >= 1 images per split")
    chain = cfg.get("chain")
    check(isinstance(chain, (list, ListConfig)) and len(chain) > 0, "chain", chain,
          "a non-empty list of stage names, e.g. [train, finetune]")
    stages: dict[str, StageConfig] = {}
    defined = [k for k, v in cfg.items() if isinstance(v, (dict, DictConfig)) and "stage" in v]
    for name in chain:  # each becomes a folder: stages/NN_<name>
        check(is_safe_slug(name), "chain", name, f"stage names that are one folder name each: {SLUG}")
        node = cfg.get(name)
        close = difflib.get_close_matches(str(name), defined, n=1)
        check(isinstance(node, (dict, DictConfig)) and "stage" in node, f"chain[{name}]", name,
              (f"did you mean '{close[0]}'? " if close else "") +
              f"Each name in chain needs a config node with a 'stage' kind, e.g. '{name}: {{stage: train}}' "
              f"(or '- stage@{name}: train' in the defaults); stage nodes defined: {', '.join(defined)}; "
              f"stage kinds: {', '.join(STAGES.names())}")
        spec = STAGES.get(node.stage)
        stages[name] = typed(spec.config, node, name)
    objective = check_objective(cfg)  # what a sweeper optimizes: metrics, constraints, stage, hydra.sweeper.direction
    init_from = cfg.get("init_from")
    check(not init_from or resolve_path(init_from).is_file(), "init_from", init_from,
          "the path of a state_dict file (torch.save(model.state_dict(), path)), or null for random init")
    runtime = typed(RuntimeConfig, cfg.get("runtime"), "runtime")
    logger = check_logger(cfg.get("logger"))
    if runtime.max_epochs is not None:  # +debug=smoke: the capped values are the stages' configs, hence keys
        stages = {name: cap_epochs(scfg, runtime.max_epochs) for name, scfg in stages.items()}
    stages = {name: same_debug_for_teachers(scfg, runtime.max_epochs, cfg.dataset.get("limit"))
              for name, scfg in stages.items()}
    measure = typed(MeasureConfig, cfg.get("measure"), "measure")
    reference = measure.reference
    if reference is None:
        reference = next((n for n in chain if STAGES.get(stages[n].stage).reference_candidate), None)
    check(reference is None or reference in stages, "measure.reference", reference,
          f"one of the chain's stages: {', '.join(chain)}")
    analyses: dict[str, StageConfig] = {}
    for name in cfg.get("analyses") or []:  # each becomes a folder: analysis/<name>
        check(is_safe_slug(name), "analyses", name, f"analysis names that are one folder name each: {SLUG}")
        node = cfg.get(name)
        check(isinstance(node, (dict, DictConfig)) and "stage" in node, f"analyses[{name}]", name,
              "each analysis needs a config node with a 'stage' kind (e.g. +analysis=sensitivity adds one)")
        analysis = typed(STAGES.get(node.stage).config, node, name)
        after = getattr(analysis, "after", None) or reference
        check(after in stages, f"{name}.after", after, f"one of the chain's stages: {', '.join(chain)}")
        analyses[name] = dataclasses.replace(analysis, after=after)  # type: ignore[call-arg]
    deployed_by = check_order(list(chain), stages, analyses, reference)  # what may follow a quantized model
    model = to_dict(cfg.model)
    models = [(model, True)]
    for name in chain:  # the model config entering each stage, and whether its layer names are known exactly
        models.append(STAGES.get(stages[name].stage).output_model(stages[name], *models[-1]))
    return Plan(name=str(cfg.get("name", "default")), chain=list(chain), stages=stages, runtime=runtime,
                measure=measure, reference=reference, analyses=analyses, deployed_by=deployed_by, model=model,
                dataset=to_dict(cfg.dataset), paths=to_dict(cfg.paths) if cfg.get("paths") else {},
                init_from=str(init_from) if init_from else None, models=models, objective=objective, logger=logger)


# Other experiments, composed and keyed as this pipeline does it (``config.Experiments``): how a distill stage finds
# a teacher trained by another experiment, at config time and in its cache key.
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

        return chain_keys(plan, fingerprint, self)[plan.chain.index(stage) + 1]


EXPERIMENTS = PackagedExperiments()
