from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from compressbench.models import build_model
from compressbench.pipeline.cache import StageCache, stage_key
from compressbench.runtimes import Arch, Eager

CPU = torch.device("cpu")
ARCH = Arch({"name": "lenet5"}, 4, 1, 8)


def artifact() -> Eager:
    return Eager(build_model(ARCH.model, 4, 1, 8), ARCH)


def test_keys_depend_on_everything_that_changes_the_result():
    base = stage_key("prev", stage={"stage": "train", "epochs": 3, "lr": 0.1})
    assert base == stage_key("prev", stage={"lr": 0.1, "epochs": 3, "stage": "train"})  # order-free
    assert base != stage_key("prev", stage={"stage": "train", "epochs": 4, "lr": 0.1})
    assert base != stage_key("other", stage={"stage": "train", "epochs": 3, "lr": 0.1})


def test_save_then_load_round_trips_model_info_and_history(tmp_path: Path):
    cache = StageCache(tmp_path)
    model = artifact()
    with cache.hold("k" * 64) as entry:
        assert entry.load(CPU) is None
        entry.save(model, {"best_epoch": 2}, [{"epoch": 1, "val_acc": 50.0}], {"notes.csv": b"a,b\n"})
    with cache.hold("k" * 64) as entry:
        hit = entry.load(CPU)
    assert hit is not None and hit.info == {"best_epoch": 2} and hit.history[0]["val_acc"] == 50.0
    assert all(torch.equal(a, b) for a, b in zip(hit.artifact.module.state_dict().values(),
                                                 model.module.state_dict().values(), strict=True))
    assert hit.files == {"notes.csv": b"a,b\n"}


def test_half_written_entry_is_recomputed(tmp_path: Path):
    cache = StageCache(tmp_path)
    with cache.hold("a" * 64) as entry:
        entry.save(artifact(), {}, [], {})
    (tmp_path / "aa" / ("a" * 64) / "DONE").unlink()  # the writer died before the marker
    with cache.hold("a" * 64) as entry:
        assert entry.load(CPU) is None


def test_corrupt_entry_is_reported_and_never_loaded(tmp_path: Path, caplog):
    cache = StageCache(tmp_path)
    with cache.hold("b" * 64) as entry:
        entry.save(artifact(), {}, [], {})
    weights = tmp_path / "bb" / ("b" * 64) / "artifact" / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    with cache.hold("b" * 64) as entry:
        assert entry.load(CPU) is None
    assert "rejected" in caplog.text


def test_disabled_cache_stores_nothing(tmp_path: Path):
    cache = StageCache(None)
    with cache.hold("c" * 64) as entry:
        entry.save(artifact(), {}, [], {})
        assert entry.load(CPU) is None


def test_parallel_processes_compute_a_shared_stage_once(tmp_path: Path):
    script = textwrap.dedent(f"""
        import time, torch
        from compressbench.pipeline.cache import StageCache
        from compressbench.models import build_model
        from compressbench.runtimes import Arch, Eager
        cache = StageCache({str(tmp_path / 'cache')!r})
        with cache.hold("d" * 64) as entry:
            if entry.load(torch.device("cpu")) is None:
                with open({str(tmp_path / 'computed.log')!r}, "a") as f:
                    f.write("computed\\n")
                time.sleep(1.0)
                arch = Arch({{"name": "lenet5"}}, 4, 1, 8)
                entry.save(Eager(build_model(arch.model, 4, 1, 8), arch), {{}}, [], {{}})
                print("miss")
            else:
                print("hit")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == ["hit", "miss"]
    assert (tmp_path / "computed.log").read_text().count("computed") == 1


def test_what_a_stage_is_timed_against_is_not_its_key(make_cfg):
    """quantize.fp32_routes (unkeyed) changes only the measurement: installing a runtime recomputes nothing."""
    from compressbench.pipeline.keys import chain_keys
    from compressbench.pipeline.plan import validate

    def keys(*overrides: str) -> list[str]:
        cfg = make_cfg("chain=[train,quantize]", *overrides)
        return chain_keys(cfg, validate(cfg), "fingerprint")

    base = keys("quantize.fp32_routes=[eager]")
    assert keys("quantize.fp32_routes=[]") == base
    assert keys("quantize.fp32_routes=[eager]", "quantize.per_channel=false")[2] != base[2]
