"""Progress bars follow runtime.progress, TQDM_DISABLE and whether the output is a terminal."""
from __future__ import annotations

import io

from compressbench.infra.progress import bar, disabled


def test_tqdm_disable_and_the_run_switch_turn_bars_off(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert disabled(True) is None and disabled(False) is True  # None: tqdm draws only on a terminal
    for value in ("1", "true", "yes"):
        monkeypatch.setenv("TQDM_DISABLE", value)
        assert disabled(True) is True
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert disabled(True) is None


def test_no_bar_is_drawn_into_a_file(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    out = io.StringIO()  # not a TTY, as a log file or CI output
    assert sum(bar(range(5), file=out)) == 10
    assert out.getvalue() == ""
