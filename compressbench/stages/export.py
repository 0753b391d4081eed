"""The ``export`` stage kind: the incoming artifact's deployable files, checked without compressbench.

Writes into ``stages/NN_export/`` the files a deployment loads — ONNX for everything that exports, and the
runtime's native file (a ``torch.export`` program ``.pt2``, the int8 ONNX, a TorchScript trace of eager int8
kernels, OpenVINO IR) — and ``manifest.json``: input shape, normalisation, class names, runtime, opset, the
sha256 of every file and the chain that made it. Each file is then loaded in a fresh Python process that cannot
import compressbench (plain torch / onnxruntime / openvino), run on test images and compared with the logits of
this run (``export_verified``, ``export_max_abs_diff``, ``export_top1_agreement``). The artifact goes on
unchanged, so ``export`` can follow any stage.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressbench.config import StageConfig, check, to_dict
from compressbench.infra.version import __version__
from compressbench.stages import StageResult, register_stage

if TYPE_CHECKING:
    from compressbench.engine.env import StageEnv
    from compressbench.runtimes import Deployable, exporting

MANIFEST = "manifest.json"


@dataclass
class ExportConfig(StageConfig):
    stage: str = "export"
    verify_images: int = 64  # test images each exported file must reproduce the run's logits on
    verify: bool = True  # load every file in a fresh process without compressbench and compare

    def __post_init__(self) -> None:
        check(self.verify_images >= 1, "verify_images", self.verify_images, ">= 1")


@register_stage("export", ExportConfig, does="exports any model")  # any model in, the same model out
def export(artifact: Deployable, cfg: ExportConfig, env: StageEnv) -> StageResult:
    """Write and verify the artifact's deployable files; hand the artifact on unchanged."""
    import torch

    from compressbench.runtimes import exporting

    artifact.eval()
    # The exported files run on the CPU: their logits are compared with the same model's on the CPU (a GPU's
    # TF32 convolutions differ from it by more than any export does).
    model = on_cpu(artifact)
    x = env.example_batch(cfg.verify_images, torch.device("cpu")).contiguous()
    with torch.no_grad():
        expected = model(x).float()
    with tempfile.TemporaryDirectory(prefix="compressbench-export-") as tmp:
        folder = Path(tmp)
        exported = model.export(folder, x[:2])
        if not exported.files:
            raise RuntimeError(f"runtime {artifact.runtime} exported no file ({exported.skipped})")
        checks = exporting.verify(folder, exported, x.cpu(), expected) if cfg.verify else {}
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    files[MANIFEST] = json.dumps(manifest(artifact, env, files, exported, checks), indent=1).encode()
    record: dict[str, Any] = {"export_files": " ".join(sorted(exported.files)),
                              "export_skipped": "; ".join(f"{k}: {v}" for k, v in exported.skipped.items()) or None}
    if checks:
        diffs = [c.get("max_abs_diff", float("inf")) for c in checks.values()]
        agree = [c.get("top1_agreement", 0.0) for c in checks.values()]
        record.update(export_verified=all(c["ok"] for c in checks.values()), export_max_abs_diff=max(diffs),
                      export_top1_agreement=min(agree))
        failed = {n: c for n, c in checks.items() if not c["ok"]}
        if failed:
            record["export_failed"] = "; ".join(f"{n}: {c.get('error') or c['max_abs_diff']}" for n, c in
                                                failed.items())
    return StageResult(artifact, record, files=files)


def on_cpu(artifact: Deployable) -> Deployable:
    """``artifact`` itself on the CPU, else a copy rebuilt there from its own files (the artifact handed on stays
    where it is)."""
    import torch

    if artifact.device.type == "cpu":
        return artifact
    with tempfile.TemporaryDirectory(prefix="compressbench-cpu-") as tmp:
        meta = artifact.save(Path(tmp))
        return type(artifact).load(Path(tmp), meta, torch.device("cpu")).eval()


def manifest(artifact: Deployable, env: StageEnv, files: dict[str, bytes], exported: exporting.Exported,
             checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Everything a deployment needs to feed the files and trust them."""
    import torch

    from compressbench.adapters import onnx as onnx_adapter

    data = env.data
    chain = env.plan.chain[: env.index]
    return {
        "input_shape": [1, *artifact.arch.input_shape], "input_dtype": "float32",
        "preprocessing": "x = (uint8 image / 255 - mean) / std, per channel, NCHW",
        "mean": list(data.mean), "std": list(data.std), "class_names": list(data.class_names),
        "runtime": artifact.runtime, "model": artifact.arch.model, "onnx_opset": onnx_adapter.OPSET,
        "files": {name: {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content),
                         "format": exported.files.get(name, "companion"), **checks.get(name, {})}
                  for name, content in files.items()},
        "not_exported": exported.skipped,
        "made_by": {"experiment": env.plan.name, "dataset": data.name, "stage_key": env.key[:16],
                    "chain": [{"stage": n, **to_dict(env.plan.stages[n])} for n in chain],
                    "compressbench": __version__, "torch": torch.__version__},
    }
