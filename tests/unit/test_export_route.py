"""Why FX int8 deploys as TorchScript and not as a torch.export ``.pt2`` (runtimes/exporting.py), pinned on the torch
installed: each reason has a test that fails the day it goes away, so the route is looked at again. And torch's
deprecation notice of torch.jit is said once in the log, never dropped silently nor spilled per export."""
from __future__ import annotations

import fractions
import io
import logging
import pickle
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from compressbench.adapters import torch_ao
from compressbench.runtimes import exporting

REVISIT = "revisit the FX int8 export route (runtimes/exporting.py, README: Export; issue 25)"


def fx_int8() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    recipe = torch_ao.Recipe(example_shape=(1, 1, 8, 8))
    prepared = torch_ao.prepare_static(model, recipe)
    prepared(torch.randn(8, 1, 8, 8))
    return torch_ao.convert(prepared)


def rewritten(data: bytes, suffix: str, payload: bytes) -> bytes:
    """A zip archive (a .pt2 or a TorchScript file) with the member ending in ``suffix`` replaced by ``payload``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        names = [n for n in src.namelist() if n.endswith(suffix)]
        assert len(names) == 1, (suffix, src.namelist())
        for name in src.namelist():
            dst.writestr(name, payload if name == names[0] else src.read(name))
    return out.getvalue()


def test_torch_export_cannot_export_fx_int8_packed_params():
    model = fx_int8()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.export.export(model, (torch.randn(2, 1, 8, 8),))
    except Exception as e:  # noqa: BLE001 — which error is torch's business; that it fails is the reason
        assert "PackedParams" in str(e) or "ScriptObject" in str(e) or "__obj_flatten__" in str(e), e
    else:
        pytest.fail(f"torch {torch.__version__} exports an FX int8 model now: {REVISIT}")


def test_torch_export_load_unpickles_what_the_file_says(tmp_path: Path):
    """A .pt2 whose sample inputs name a Python global (harmless here: fractions.Fraction) gets it called."""
    program = torch.export.export(nn.Linear(2, 2).eval(), (torch.randn(1, 2),))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    crafted = io.BytesIO()
    torch.save(((fractions.Fraction(1, 3),), {}), crafted)  # refused by weights_only=True
    path = tmp_path / "crafted.pt2"
    path.write_bytes(rewritten(buf.getvalue(), "data/sample_inputs/model.pt", crafted.getvalue()))
    logging.disable(logging.WARNING)  # torch's notice of the fallback has a broken format string
    try:
        loaded = torch.export.load(path)
    except Exception:  # noqa: BLE001
        pytest.fail(f"torch {torch.__version__}'s torch.export.load refuses a pickled Python global: {REVISIT}")
    finally:
        logging.disable(logging.NOTSET)
    assert loaded.example_inputs[0][0] == fractions.Fraction(1, 3), REVISIT


def test_torchscript_load_refuses_python_globals():
    traced = exporting.torchscript_bytes(nn.Linear(2, 2), torch.randn(1, 2))
    crafted = rewritten(traced, "data.pkl", pickle.dumps(fractions.Fraction(1, 3), protocol=2))
    with pytest.raises(RuntimeError, match="fractions.Fraction"):
        exporting.load_torchscript(crafted)


class Branchy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if bool(x.sum() > 0) else x  # the trace keeps one branch: torch warns (TracerWarning)


def test_the_jit_deprecation_is_said_once_in_the_log_and_other_warnings_pass(monkeypatch, caplog):
    monkeypatch.setattr(exporting, "_said", [])
    caplog.set_level(logging.INFO, logger=exporting.__name__)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        for _ in range(2):  # two exports: trace, save and load each
            exporting.load_torchscript(exporting.torchscript_bytes(Branchy(), torch.ones(1, 2)))
    assert not [w for w in shown if "torch.jit" in str(w.message) and "deprecated" in str(w.message)]
    assert any(issubclass(w.category, torch.jit.TracerWarning) for w in shown)  # not swallowed with it
    said = [r.getMessage() for r in caplog.records if "deprecates torch.jit" in r.getMessage()]
    assert len(said) == 1 and f"torch {torch.__version__}" in said[0] and "torch.export cannot" in said[0]
