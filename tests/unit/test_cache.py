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
    from compressbench.pipeline.plan import EXPERIMENTS, validate

    def keys(*overrides: str) -> list[str]:
        cfg = make_cfg("chain=[train,quantize]", *overrides)
        return chain_keys(validate(cfg), "fingerprint", EXPERIMENTS)

    base = keys("quantize.fp32_routes=[eager]")
    assert keys("quantize.fp32_routes=[]") == base
    assert keys("quantize.fp32_routes=[eager]", "quantize.per_channel=false")[2] != base[2]


# --- what a cache entry may not get away with (a shared cache dir is written by others) ----------------------

def saved(tmp_path: Path, key: str, files: dict[str, bytes] | None = None) -> tuple[StageCache, Path]:
    cache = StageCache(tmp_path)
    with cache.hold(key) as entry:
        entry.save(artifact(), {"encoded_bytes": 20417, "export_verified": True},
                   [{"epoch": 1, "val_acc": 50.0}], files or {})
    return cache, tmp_path / key[:2] / key


def load(cache: StageCache, key: str):
    with cache.hold(key) as entry:
        return entry.load(CPU)


def edit(path: Path, change) -> None:
    import json

    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta, indent=1))


def test_an_edited_record_is_rejected_and_recomputed(tmp_path: Path, caplog):
    key = "e" * 64
    cache, folder = saved(tmp_path, key)
    assert "record" in load(cache, key).checked
    edit(folder / "entry.json", lambda m: m["info"].update(encoded_bytes=20416))  # one digit
    assert load(cache, key) is None and "recorded fields do not match" in caplog.text
    cache, folder = saved(tmp_path, key)
    edit(folder / "entry.json", lambda m: m["history"][0].update(val_acc=99.0))
    assert load(cache, key) is None and not (folder / "DONE").exists()


def test_entries_written_before_the_record_checksum_still_load_and_verify_their_files(tmp_path: Path):
    key = "f" * 64
    cache, folder = saved(tmp_path, key, {"notes.csv": b"a\n"})
    edit(folder / "entry.json", lambda m: m.pop("record_sha256"))  # what entries of today's main hold
    hit = load(cache, key)
    assert hit is not None and hit.info["encoded_bytes"] == 20417 and hit.checked == "sha256 of 2 file(s)"
    (folder / "files" / "notes.csv").write_bytes(b"b\n")
    assert load(cache, key) is None


def test_a_files_folder_replaced_by_a_file_is_recomputed_on_every_rerun(tmp_path: Path):
    import shutil

    key = "9" * 64
    cache, folder = saved(tmp_path, key, {"layers.csv": b"x\n"})
    shutil.rmtree(folder / "files")
    (folder / "files").write_text("in the way")
    assert load(cache, key) is None
    saved(tmp_path, key, {"layers.csv": b"x\n"})  # today: FileExistsError, on this run and every rerun
    assert load(cache, key).files == {"layers.csv": b"x\n"}
    shutil.rmtree(folder / "files")
    (folder / "files").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # a link out: not written through
    (tmp_path / "elsewhere").mkdir()
    saved(tmp_path, key, {"layers.csv": b"x\n"})
    assert list((tmp_path / "elsewhere").iterdir()) == [] and load(cache, key) is not None


def test_a_file_planted_next_to_a_manifest_is_refused(tmp_path: Path, caplog):
    import hashlib
    import json

    from compressbench.infra.hashing import file_sha256
    from compressbench.pipeline.cache import record_sha256

    onnx = b"the exported model"
    manifest = {"files": {"model.onnx": {"sha256": hashlib.sha256(onnx).hexdigest(), "bytes": len(onnx)}}}
    key = "8" * 64
    cache, folder = saved(tmp_path, key, {"model.onnx": onnx, "manifest.json": json.dumps(manifest).encode()})
    assert "manifest.json" in load(cache, key).checked
    (folder / "files" / "model.onnx").write_bytes(b"a planted model")

    def forge(meta):  # whoever plants a file fixes the checksums entry.json holds
        meta["sha256"]["files/model.onnx"] = file_sha256(folder / "files" / "model.onnx")
        meta["record_sha256"] = record_sha256(meta)

    edit(folder / "entry.json", forge)
    assert load(cache, key) is None and "do not match manifest.json: model.onnx" in caplog.text
