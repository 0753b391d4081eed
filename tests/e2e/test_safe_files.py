"""Security drills (issue 13): nothing we read can run code, and a tampered cache entry is never used.

Each attack plants a pickle whose unpickling would create a marker file, or edits an entry; the marker never
appears and each tampering is detected (reported, recomputed).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from compressbench.infra.hashing import file_sha256
from compressbench.pipeline.runner import run


class Evil:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do (here harmlessly)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 1, "key": "anything", "model": Evil(marker)}, path)


def entries(cache: Path) -> dict[str, Path]:
    """kind of the entry's artifact → its folder, for the entries of a finished default-chain run."""
    found = {}
    for meta in cache.rglob("entry.json"):
        info = json.loads(meta.read_text())
        found.setdefault(info["stage"], meta.parent)
    return found


def rewrite_checksums(entry: Path) -> None:
    """What an attacker with write access would do: make entry.json agree with the planted files."""
    meta = json.loads((entry / "entry.json").read_text())
    meta["sha256"] = {p.relative_to(entry).as_posix(): file_sha256(p) for sub in ("artifact", "files")
                      for p in sorted((entry / sub).rglob("*")) if p.is_file()}
    (entry / "entry.json").write_text(json.dumps(meta))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


def test_resume_pickle_in_the_cache_entry_is_refused(make_cfg, tmp_path: Path, marker: Path, caplog):
    first = run(make_cfg(), tmp_path / "a")
    train = entries(tmp_path / "cache")["train"]
    (train / "DONE").unlink()  # as if the stage had been interrupted: the next run resumes from here
    plant(train / "resume.pt", marker)
    rows = run(make_cfg(), tmp_path / "b")
    assert not marker.exists()
    assert "holds more than tensors" in caplog.text
    assert rows[0]["test_acc"] == first[0]["test_acc"] and rows[0].get("resumed_from_epoch") is None


def test_resume_pickle_in_the_run_dir_is_refused(make_cfg, tmp_path: Path, marker: Path, caplog):
    out = tmp_path / "run"
    plant(out / "stages/00_train/resume.pt", marker)
    run(make_cfg("runtime.cache=false"), out)
    assert not marker.exists()
    assert "holds more than tensors" in caplog.text


def test_artifact_pickle_with_a_rewritten_checksum_is_refused(make_cfg, tmp_path: Path, marker: Path, caplog):
    first = run(make_cfg(), tmp_path / "a")
    train = entries(tmp_path / "cache")["train"]
    plant(train / "artifact" / "weights.pt", marker)
    rewrite_checksums(train)
    rows = run(make_cfg(), tmp_path / "b")
    assert not marker.exists()
    assert "rejected" in caplog.text
    assert rows[0]["cache_hit"] is False and rows[0]["test_acc"] == first[0]["test_acc"]  # recomputed


def test_pickle_planted_in_files_is_detected_or_only_copied(make_cfg, tmp_path: Path, marker: Path, caplog):
    run(make_cfg("chain=[train,prune]"), tmp_path / "a")
    prune = entries(tmp_path / "cache")["prune"]
    plant(prune / "files" / "layers.csv", marker)  # checksum left as it was: detected
    rows = run(make_cfg("chain=[train,prune]"), tmp_path / "b")
    assert "rejected" in caplog.text and rows[1]["cache_hit"] is False
    plant(prune / "files" / "extra.pt", marker)  # file checksums rewritten to match: the record's checksum
    rewrite_checksums(prune)  # (record_sha256 over entry.json) no longer does, so the entry is recomputed
    rows = run(make_cfg("chain=[train,prune]"), tmp_path / "c")
    assert rows[1]["cache_hit"] is False and not (tmp_path / "c/stages/01_prune/extra.pt").exists()
    assert not marker.exists()  # never loaded either way


def test_entry_copied_under_another_key_is_rejected(make_cfg, tmp_path: Path, caplog):
    """The attack of the issue: a pruned model's entry copied over the baseline's key."""
    first = run(make_cfg("chain=[train,prune]", "prune.amount=0.9"), tmp_path / "a")
    found = entries(tmp_path / "cache")
    train, prune = found["train"], found["prune"]
    shutil.rmtree(train)
    shutil.copytree(prune, train)
    rows = run(make_cfg("chain=[train,prune]", "prune.amount=0.9"), tmp_path / "b")
    assert "rejected" in caplog.text
    assert rows[0]["cache_hit"] is False and rows[0]["test_acc"] == first[0]["test_acc"]


def test_a_flipped_byte_in_files_is_detected(make_cfg, tmp_path: Path, caplog):
    run(make_cfg("chain=[train,prune]"), tmp_path / "a")
    prune = entries(tmp_path / "cache")["prune"]
    path = prune / "files" / "weights.cbsp"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    rows = run(make_cfg("chain=[train,prune]"), tmp_path / "b")
    out = caplog.text
    assert "rejected" in out and "files/weights.cbsp" in out
    assert rows[1]["cache_hit"] is False
    assert (tmp_path / "b/stages/01_prune/weights.cbsp").read_bytes() != bytes(data)  # the recomputed file


def test_no_full_unpickling_anywhere_in_the_package():
    """Every torch.load in the package is weights-only (the before-stop check, as a test)."""
    root = Path(__file__).resolve().parents[2] / "compressbench"
    for path in root.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}:{number}: {line.strip()}"
            assert "weights_only=False" not in line, f"{path}:{number}"
