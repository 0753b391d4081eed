"""The one-page report, opened in a real headless browser (Debian's chromium): every figure loads, the tables
are there and sort. Skipped, saying why, where no Chromium is installed (CI installs it)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_rows import compare_tree

from compressbench.report import main, write_report
from compressbench.report.html import markdown_to_html, page

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
# Runs in the page once it has loaded; the browser's DOM dump carries the answer out.
PROBE = """<script>window.addEventListener('load', function(){
  var imgs = Array.from(document.images);
  var t = Array.from(document.querySelectorAll('table.sortable')).find(function(x){
    return x.tHead.rows[0].cells[0].textContent.trim() === '#'; });
  var col = function(){ return Array.from(t.tBodies[0].rows).map(function(r){ return r.cells[0].textContent; }); };
  var before = col(); t.tHead.rows[0].cells[0].click(); var asc = col(); t.tHead.rows[0].cells[0].click();
  var out = {images: imgs.length, loaded: imgs.filter(function(i){ return i.complete && i.naturalWidth > 0; }).length,
             tables: document.querySelectorAll('table.sortable').length, before: before, asc: asc, desc: col()};
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>"""


def test_markdown_tables_become_sortable_html_tables():
    html = markdown_to_html("## Title\n\n| a | b |\n|---|---|\n| 1 | `x \\| y` |\n\n- one *two*\n")
    assert "<h3>Title</h3>" in html and '<table class="sortable">' in html and "<code>x | y</code>" in html
    assert "<li>one <em>two</em></li>" in html


def _report(tmp_path: Path) -> Path:
    """compare_tree's summary.md, with three stand-in plots (the page inlines bytes; their drawing is not tested)."""
    runs = tmp_path / "runs"
    compare_tree(runs)
    write_report(runs, figures=False)
    (runs / "plots").mkdir()
    for name in ("accuracy_vs_size", "speedup_vs_compression", "accuracy_change_vs_speedup"):
        (runs / "plots" / f"{name}.png").write_bytes(name.encode())
    return runs


def test_the_page_leads_with_the_figures_that_answer_the_question(tmp_path: Path):
    html = page([("demo", _report(tmp_path))])
    assert html.index("<figure") < html.index("<img") < html.index("<table")  # a figure before any table
    alts = re.findall(r'<img [^>]*alt="([^"]+)"', html)
    assert alts == ["speedup_vs_compression", "accuracy_vs_size", "accuracy_change_vs_speedup"]
    assert html.index('alt="accuracy_vs_size"') < html.index("<table") < html.index('alt="accuracy_change_vs_speedup"')


def test_a_pick_that_answers_several_budgets_is_listed_once(tmp_path: Path):
    html = page([("demo", _report(tmp_path))])
    deploy = html.split("What should I deploy?")[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", deploy)[1:]
    cells = [re.findall(r"<td>(.*?)</td>", r)[:4] for r in rows]
    # compare_tree: the baseline is the fastest for every budget; the smallest changes once, at 2 pt.
    assert [c[:2] for c in cells] == [["≤ 0.5, 1 pt", "smallest that runs as is"], ["≤ 0.5, 1, 2 pt", "fastest"],
                                      ["≤ 2 pt", "smallest that runs as is"]]
    picks = [(c[1], c[2]) for c in cells]
    assert len(picks) == len(set(picks))  # no recommendation twice


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: apt-get install -y chromium (Debian)")
def test_the_findings_page_loads_in_a_headless_browser(tmp_path: Path):
    compare_tree(tmp_path / "runs")
    assert main([str(tmp_path / "runs"), "--findings-dir", str(tmp_path / "findings"), "--html"]) == 0
    page = (tmp_path / "findings" / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # self-contained: nothing fetched from outside
    pngs = len(list((tmp_path / "findings").glob("*/plots/*.png")))
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the page did not finish loading: {proc.stderr[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["images"] == pngs > 5 and result["loaded"] == result["images"]
    assert result["tables"] >= 5
    # A click on '#' sorts the branches by number, a second click reverses them.
    numbers = [int(c) for c in result["before"] if c.isdigit()]
    assert len(numbers) >= 4 and sorted(result["asc"]) == sorted(result["before"])
    assert [int(c) for c in result["asc"] if c.isdigit()] == sorted(numbers)
    assert [int(c) for c in result["desc"] if c.isdigit()] == sorted(numbers, reverse=True)
