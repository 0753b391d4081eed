"""Cache keys of a chain (DESIGN.md §5): known up front, from configs, the data's fingerprint and file contents."""
from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

import torch

from compressbench.config import Experiments, Plan, resolve_path
from compressbench.infra.hashing import file_sha256
from compressbench.pipeline.cache import stage_key

UNKEYED_DATASET = ("download", "root", "max_image_pixels")  # dataset options the data fingerprint stands for


def chain_keys(plan: Plan, fingerprint: str, experiments: Experiments) -> list[str]:
    """Cache keys: [initial model, after stage 1, ...].

    The first key covers the model and dataset configs, the seed, the training environment, the bytes of an
    ``init_from`` file and ``fingerprint`` — the data actually loaded (files, split indices) — so a changed
    dataset recomputes every stage instead of scoring an old model on images it trained on. ``experiments``
    compose and key the experiments a stage reads from (a distill teacher's): ``pipeline.plan.EXPERIMENTS``.
    """
    from compressbench.stages import STAGES

    # Where the files are is not what they are: the fingerprint covers the content, so a moved folder (another
    # machine, another session's unpack) keeps its keys; whether to download changes nothing either, and a pixel
    # limit changes keys only where it skips an image (the fingerprint lists the files decoded).
    dataset = {k: v for k, v in plan.dataset.items() if k not in UNKEYED_DATASET}
    init = file_sha256(resolve_path(plan.init_from)) if plan.init_from else None
    from compressbench.models import model_identity  # outside models add their source file's hash

    keys = [stage_key("", model=model_identity(plan.model), dataset=dataset, data=fingerprint,
                      seed=plan.runtime.seed, init_from=init, training=training_environment(plan))]
    for name in plan.chain:
        scfg = plan.stages[name]
        kind = STAGES.get(scfg.stage)
        salt = kind.cache_salt(scfg, experiments, fingerprint)  # what it reads beyond its options (a teacher file)
        keys.append(stage_key(keys[-1], stage=kind.key_fields(scfg), **({"salt": salt} if salt else {})))
    return keys


def training_environment(plan: Plan) -> dict[str, Any]:
    """What, besides configs, changes a trained model: precision (the training route's, which depends on the
    device and the model), ranks (the global batch), determinism and the torch/torchvision versions. Part of
    every cache key; memory format and compilation are not (engine/route.py)."""
    from compressbench.engine import resolve_device
    from compressbench.engine.route import route_for

    device = resolve_device(plan.runtime.device)
    return {"precision": route_for(device, plan.runtime, plan.model).precision.name,
            "world_size": int(os.environ.get("WORLD_SIZE", "1")), "deterministic": plan.runtime.deterministic,
            "torch": torch.__version__, "torchvision": torchvision_version()}


def torchvision_version() -> str:
    """``torchvision.__version__`` (local label included, as keys have always held it) without importing
    torchvision when nothing else has: its import pulls in torch._dynamo, ~1.5 s a run for a LeNet."""
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"].__version__
    spec = importlib.util.find_spec("torchvision")
    try:
        text = (Path(spec.submodule_search_locations[0]) / "version.py").read_text()
        return re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", text, re.M).group(1)
    except (AttributeError, TypeError, OSError):  # another layout: ask the package itself
        import torchvision

        return torchvision.__version__
