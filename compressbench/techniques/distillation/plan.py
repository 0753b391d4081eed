"""Checks of a distill stage that need the whole chain, run before any training.

Names of layers are checked on models built on the meta device (no memory, no arithmetic) from their configs,
wherever the configs tell the architecture exactly; the stage checks them again on the real models.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch

from compressbench.config import BadValue, ConfigError, Experiments, check_weights_file, resolve_path
from compressbench.techniques.distillation.features import describe_names, layer_names
from compressbench.techniques.distillation.teacher import check_same_data, experiment_stage

if TYPE_CHECKING:
    from compressbench.config import Plan
    from compressbench.config.distill import DistillConfig

# Layer names can depend on the image size (AlexNet and VGG switch heads at 64 and 128 px): a name valid at
# any of these sizes passes here; the stage checks it again on the real model.
PROBE_SIZES = (32, 224)


def static_layers(node: dict[str, Any]) -> set[str]:
    """Names of the submodules of the model ``node`` describes (union over ``PROBE_SIZES``)."""
    return set(_static_layers(json.dumps(node, sort_keys=True, default=str)))


@lru_cache(maxsize=64)
def _static_layers(node_json: str) -> tuple[str, ...]:
    from compressbench.models import build_model

    node = json.loads(node_json)
    node.pop("pretrained", None)  # names only: never download weights here
    names: set[str] = set()
    for size in PROBE_SIZES:
        with torch.device("meta"):
            names.update(layer_names(build_model(node, 10, 3, size)))
    return tuple(sorted(names))


def teacher_layers(cfg: DistillConfig) -> list[tuple[str, str]]:
    """(config key, layer name) of every teacher layer the loss terms read."""
    keys = [("hint_layer", cfg.hint_layer)] if "fitnets" in cfg.loss and cfg.hint_layer else []
    return keys + [("at_layers", n) for n in (cfg.at_layers if "at" in cfg.loss else [])]


def student_layers(cfg: DistillConfig) -> list[tuple[str, str]]:
    """(config key, layer name) of every student layer the loss terms read."""
    guided = cfg.guided_layer or cfg.hint_layer
    keys = [("guided_layer", guided)] if "fitnets" in cfg.loss and guided else []
    return keys + [("at_student_layers", n) for n in (cfg.student_at_layers if "at" in cfg.loss else [])]


def check_plan(dcfg: DistillConfig, name: str, plan: Plan, experiments: Experiments) -> None:
    """Raise a ConfigError unless the teacher can be found and its layer names exist (where knowable)."""
    if not dcfg.loss:
        return  # labels only: no teacher
    index = plan.chain.index(name)
    spec = dcfg.teacher
    if spec.path is not None:
        path = resolve_path(spec.path)
        if not path.is_file():
            raise BadValue(f"{name}.teacher.path", spec.path, f"an existing state_dict file ({path} is missing); "
                           f"save one with torch.save(model.state_dict(), path)")
        check_weights_file(f"{name}.teacher.path", spec.path)  # its shapes: the kind's files check
        teacher, exact = {"name": spec.model} if spec.model else dict(plan.model), True
    elif spec.experiment is not None:
        other_plan = experiments.compose(spec.experiment, spec.overrides)
        check_same_data(plan.dataset, other_plan.dataset, spec.experiment)
        stage = experiment_stage(spec, other_plan)
        check_fp32_teacher(f"{name}.teacher.stage", stage, other_plan, f" of experiment '{spec.experiment}'")
        teacher, exact = other_plan.input_model(other_plan.chain.index(stage) + 1)
    elif spec.stage is not None:
        earlier = plan.chain[:index]
        if spec.stage not in earlier:
            raise BadValue(f"{name}.teacher.stage", spec.stage,
                           f"a stage before '{name}' in the chain: {', '.join(earlier) or 'none'}")
        if not plan.runtime.cache:
            raise ConfigError(f"{name}.teacher.stage={spec.stage!r} is read back from the stage cache, and "
                              f"runtime.cache=false; set runtime.cache=true, or put '{name}' right after "
                              f"'{spec.stage}' and leave {name}.teacher.stage unset (the incoming model teaches)")
        check_fp32_teacher(f"{name}.teacher.stage", spec.stage, plan, "")
        teacher, exact = plan.input_model(earlier.index(spec.stage) + 1)
    else:
        if index == 0 and not plan.init_from:
            raise ConfigError(f"'{name}' is the first stage, so its default teacher (the incoming model) is the "
                              f"untrained initial model; train it first (chain: [train, {name}]), or set "
                              f"{name}.teacher.stage / .experiment / .path, or init_from=<state_dict file>")
        teacher, exact = plan.input_model(index)
    if exact:
        valid = static_layers(teacher)
        for key, layer in teacher_layers(dcfg):
            if layer not in valid:
                raise BadValue(f"{name}.{key}", layer, f"a layer of the teacher {teacher['name']}: "
                               f"{describe_names(sorted(valid))}")


def check_fp32_teacher(key: str, stage: str, plan: Plan, of: str) -> None:
    """A teacher is an fp32 model: raise BadValue if ``stage`` hands on a deployed one (``Plan.deployed_by``)."""
    origin = plan.deployed_by.get(stage)
    if origin is not None:
        raise BadValue(key, stage, f"a stage{of} whose model is fp32: the model leaving '{stage}' runs on a "
                       f"deployment runtime (deployed by '{origin}'); name a stage before '{origin}'")
