"""File locks: mutual exclusion across processes, and no lock file left behind."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from compressbench.infra.locks import file_lock

WORKER = """
import sys
from pathlib import Path
from compressbench.infra.locks import file_lock
lock, counter = Path(sys.argv[1]), Path(sys.argv[2])
for _ in range(int(sys.argv[3])):
    with file_lock(lock):
        value = int(counter.read_text())  # read-modify-write: loses updates without mutual exclusion
        counter.write_text(str(value + 1))
"""


def test_the_lock_file_is_removed_on_release(tmp_path: Path):
    lock = tmp_path / "locks" / "k.lock"
    with file_lock(lock):
        assert lock.exists()
    assert not lock.exists()
    with file_lock(lock):  # and it can be taken again
        pass
    assert list((tmp_path / "locks").iterdir()) == []


def test_processes_that_remove_the_file_still_exclude_each_other(tmp_path: Path):
    counter = tmp_path / "counter"
    counter.write_text("0")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "x.lock"), str(counter), "150"])
             for _ in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert int(counter.read_text()) == 600  # every increment kept: the unlink-then-release protocol is safe
    assert not (tmp_path / "x.lock").exists()
