"""The command line answers before the heavy imports: ``--help``, ``--cfg job`` and a config error never import
torch (or torchvision, matplotlib, pandas, ONNX, ...), and an error that needs the model zoo or the runtimes
imports torch alone. What is checked is the modules loaded when the process ends (no timing here:
``scripts/bench_startup.py`` measures it), and only after the command did what it should, so a crash for another
reason never passes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Everything that costs start-up time beyond torch itself (torchvision.ops imports torch._dynamo).
HEAVY = ("torchvision", "torch._dynamo", "matplotlib", "pandas", "onnx", "onnxruntime", "onnxscript", "sklearn",
         "scipy", "torch_pruning", "torchao", "openvino", "nncf")

# Runs the console script's function under sys.argv; at exit (also through sys.exit) it writes sys.modules.
WRAPPER = """
import atexit, json, sys
out, sys.argv = sys.argv[1], ["compressbench", *sys.argv[2:]]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
from compressbench.__main__ import cli
cli()
"""


def loaded(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run the CLI with ``args``; (the process, the modules it had loaded when it exited)."""
    wrapper, dump = tmp_path / "wrapper.py", tmp_path / "modules.json"
    wrapper.write_text(WRAPPER)
    dump.unlink(missing_ok=True)
    env = {**os.environ, "COMPRESSBENCH_DATA_DIR": str(tmp_path / "data"),
           "COMPRESSBENCH_CACHE_DIR": str(tmp_path / "cache"), "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run([sys.executable, str(wrapper), str(dump), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert dump.is_file(), f"the process did not reach exit normally:\n{proc.stderr[-3000:]}"
    return proc, set(json.loads(dump.read_text()))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


@pytest.mark.parametrize("args, status, expect", [
    (["--cfg", "job"], 0, "chain:\n- train\n- prune\n- finetune\n- quantize\n"),
    (["--help"], 0, "== Choices (GROUP=OPTION) =="),
    (["prune.amount=2"], 2, "compressbench: prune.amount=2.0 is not allowed: a fraction 0 <= amount < 1"),
    (["chain=[train,nope]"], 2, "compressbench: chain[nope]='nope' is not allowed"),
    (["model=nope"], 1, "Could not find 'model/nope'"),  # Hydra's own error, at composition
    (["quantize.backend=nope"], 2, "compressbench: quantize.backend='nope' is not allowed"),
    (["prune.method=l2_filter"], 2, "compressbench: prune.method='l2_filter' is not allowed: one of l1_filter"),
    (["finetune.lr=-1"], 2, "compressbench: finetune.lr=-1.0 is not allowed: > 0"),
    (["measure.warmup=0"], 2, "compressbench: measure.warmup=0 is not allowed: >= 1"),
])
def test_help_config_and_config_errors_import_no_torch(tmp_path: Path, args: list[str], status: int, expect: str):
    proc, modules = loaded(tmp_path, *args)
    assert proc.returncode == status and expect in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
    assert "torch" not in modules and not heavy_in(modules), heavy_in(modules) or "torch"
    assert not (tmp_path / "outputs").exists()  # nor left an empty run dir behind


def test_errors_that_need_the_model_zoo_import_torch_alone(tmp_path: Path):
    """A model option is checked against its builder's signature, which needs the model's module (torch); still
    nothing beyond torch before the error."""
    proc, modules = loaded(tmp_path, "+model.nope=1")
    assert proc.returncode == 2 and "compressbench: model 'lenet5' has no option 'nope'" in proc.stderr, proc.stderr
    assert "torch" in modules and not heavy_in(modules), heavy_in(modules)


def test_the_runner_registers_what_the_stage_modules_import_late(tmp_path: Path):
    """Stage modules import their techniques inside the stage functions, yet a run whose stages all come from the
    cache needs weight sharing's saved state (to rebuild a clustered model) and the sparse encoding's row fields
    (``encoded_bytes`` of a finetune after a prune): a fresh process that imports the runner has both."""
    code = ("import json, compressbench.pipeline.runner; from compressbench.runtimes.eager import MODULE_STATES, "
            "ROW_FIELDS; print(json.dumps([[s.name for s in MODULE_STATES], [f.__name__ for f in ROW_FIELDS]]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    states, fields = json.loads(proc.stdout)
    assert "weight_sharing" in states and "sparse_encoding_fields" in fields, (states, fields)
