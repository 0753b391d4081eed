"""GPU path (run with ``pytest -m gpu`` on a CUDA machine; skipped elsewhere)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compressbench.pipeline.runner import run

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_chain_trains_with_amp_on_the_gpu_and_names_it(make_cfg, tmp_path: Path):
    rows = run(make_cfg("runtime.device=auto", "train.epochs=3", "dataset.in_channels=3",
                        "dataset.image_size=32", "model=resnet20"), tmp_path / "run")
    assert all(r["status"] == "ok" for r in rows)
    assert rows[0]["device"].startswith("cuda:") and torch.cuda.get_device_name() in rows[0]["device"]
    assert rows[0]["precision"] in {"bf16", "fp16"}  # AMP picked for CUDA
    assert rows[0]["test_acc"] > 40 and rows[1]["speedup_vs_reference"] > 0


def test_resume_and_determinism_flags_work_on_the_gpu(make_cfg, tmp_path: Path):
    a = run(make_cfg("runtime.deterministic=true", "runtime.cache=false"), tmp_path / "a")
    b = run(make_cfg("runtime.deterministic=true", "runtime.cache=false"), tmp_path / "b")
    assert [r["test_acc"] for r in a] == [r["test_acc"] for r in b]
