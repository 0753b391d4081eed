"""Where a teacher comes from: the model entering the stage, an earlier stage of the chain, another experiment's
cached stage, or a user's state_dict file.

Earlier stages and other experiments are found in the stage cache by their keys (the pipeline's
``Experiments`` and ``StageEnv.lookup``), so the pipeline needs to keep no models: a stage's model is in the cache once it has run. A user's file is loaded with
``weights_only=True`` (``compressbench.infra.safe_load``); cache entries are our own files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from compressbench.config import BadValue, ConfigError, resolve_path, to_dict

if TYPE_CHECKING:
    from compressbench.config import Plan
    from compressbench.config.distill import TeacherConfig
    from compressbench.engine.env import StageEnv


@dataclass
class Teacher:
    model: nn.Module
    source: str  # input:<stage> | stage:<stage> | experiment:<name>/<stage> | checkpoint:<path>
    arch: str  # its model name (a distilled student's name after a distill stage)


def experiment_stage(spec: TeacherConfig, plan: Plan) -> str:
    """The teacher stage of another experiment: ``teacher.stage``, else that experiment's reference stage."""
    stage = spec.stage or plan.reference
    if stage is None or stage not in plan.chain:
        raise ConfigError(f"distill.teacher.stage={stage!r} is not a stage of experiment '{spec.experiment}'; "
                          f"its chain: {', '.join(plan.chain)}")
    return stage


def check_same_data(ours: dict[str, Any], theirs: dict[str, Any], name: str) -> None:
    """The teacher must have been trained on this dataset and split: its val/test images must be ours too."""
    def split(node: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in to_dict(node).items() if k not in ("download", "augment")}

    if split(ours) != split(theirs):
        raise ConfigError(f"distill.teacher.experiment={name!r} uses dataset {split(theirs)}, this run "
                          f"{split(ours)}; a teacher must be trained on the same data and splits (else it "
                          f"has seen this run's test images). Match them with distill.teacher.overrides")


def resolve_teacher(spec: TeacherConfig, incoming: nn.Module, env: StageEnv) -> Teacher:
    """The teacher ``spec`` names, on ``env.device``, in eval mode."""
    if spec.path is not None:
        teacher = _from_checkpoint(spec, env)
    elif spec.experiment is not None:
        teacher = _from_experiment(spec, env)
    elif spec.stage is not None:
        teacher = _from_stage(spec.stage, env)
    else:
        index = env.index
        before = env.plan.chain[index - 1] if index > 0 else "initial model"
        teacher = Teacher(incoming, f"input:{before}", env.plan.input_model(index)[0]["name"])
    teacher.model.eval()
    return teacher


def _from_stage(stage: str, env: StageEnv) -> Teacher:
    from compressbench.runtimes import as_module

    if not env.plan.runtime.cache:
        raise ConfigError(f"distill.teacher.stage={stage!r} is read back from the stage cache, and "
                          f"runtime.cache=false; set runtime.cache=true, or put this distill stage right after "
                          f"'{stage}' and leave distill.teacher.stage unset (the incoming model is the teacher)")
    artifact = env.lookup(stage)
    if artifact is None:
        raise ConfigError(f"distill.teacher.stage={stage!r}: that stage's model is not in the stage cache "
                          f"(its kind '{env.plan.stages[stage].stage}' may not be cacheable); put this distill "
                          f"stage right after it and leave distill.teacher.stage unset")
    arch = env.plan.input_model(env.plan.chain.index(stage) + 1)[0]["name"]
    return Teacher(as_module(artifact, env.name), f"stage:{stage}", arch)


def _from_experiment(spec: TeacherConfig, env: StageEnv) -> Teacher:
    assert spec.experiment is not None
    from compressbench.runtimes import as_module

    plan = env.experiments.compose(spec.experiment, spec.overrides)
    check_same_data(env.plan.dataset, plan.dataset, spec.experiment)
    stage = experiment_stage(spec, plan)
    # check_same_data made sure it is this run's dataset config, so this run's data fingerprint is its too; the
    # entry is looked for in this run's cache, wherever that experiment's config points.
    artifact = env.lookup_key(env.experiments.stage_key(plan, stage, env.data.fingerprint))
    if artifact is None:
        cache_dir = resolve_path(env.plan.paths["cache_dir"])
        command = " ".join(["python -m compressbench", f"+experiment={spec.experiment}", *spec.overrides,
                            f"paths.cache_dir={cache_dir}"])
        raise ConfigError(f"distill.teacher.experiment={spec.experiment!r}: its stage '{stage}' is not in the "
                          f"stage cache at {cache_dir}; run that experiment first: {command}")
    arch = plan.input_model(plan.chain.index(stage) + 1)[0]["name"]
    return Teacher(as_module(artifact, env.name), f"experiment:{spec.experiment}/{stage}", arch)


def teacher_node(spec: TeacherConfig, model: dict[str, Any]) -> dict[str, Any]:
    """The model config of a teacher file: ``teacher.model``, else this run's ``model``."""
    node = {"name": spec.model} if spec.model else dict(model)
    node.pop("pretrained", None)  # the file holds the weights; nothing to download
    return node


def check_teacher_file(spec: TeacherConfig, key: str, model: dict[str, Any], num_classes: int, in_channels: int,
                       image_size: int) -> None:
    """Raise BadValue at ``key`` unless the teacher file reads weights-only and fits its model's names and shapes
    (the model built on the meta device: no memory, no arithmetic)."""
    import torch

    from compressbench.infra.safe_load import CheckpointError, check_fits, read_state_dict
    from compressbench.models import build_model

    assert spec.path is not None
    path = resolve_path(spec.path)
    with torch.device("meta"):
        built = build_model(teacher_node(spec, model), num_classes, in_channels, image_size)
    try:
        check_fits(built, read_state_dict(path), path, f"set {key.removesuffix('.path')}.model to the file's "
                   f"architecture, or give a teacher trained on this dataset's classes, channels and image size")
    except CheckpointError as e:
        raise BadValue(key, spec.path, str(e)) from None


def _from_checkpoint(spec: TeacherConfig, env: StageEnv) -> Teacher:
    from compressbench.infra.safe_load import load_weights_
    from compressbench.models import build_model

    assert spec.path is not None
    node = teacher_node(spec, env.plan.model)
    data = env.data
    model = build_model(node, data.num_classes, data.in_channels, data.image_size)
    load_weights_(model, resolve_path(spec.path))
    return Teacher(model.to(env.device), f"checkpoint:{resolve_path(spec.path)}", node["name"])
