"""One self-contained page for one or more reports: ``index.html`` with every figure inline (base64 PNG),
every summary table sortable by a click on its header, and each experiment's provenance. Each experiment opens
with the figures that answer what to deploy (``LEAD``), then summary.md's tables, then the other figures. No
external resources: it works offline and can be mailed as one file."""
from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

from compressbench.infra.atomic import atomic_write_text

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 1em;color:#222}
nav a{margin-right:1em} h1{border-bottom:2px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3;cursor:pointer;user-select:none} th:after{content:" \\2195";color:#999}
code{font-size:12px;background:#f6f6f6} figure{display:inline-block;margin:.5em;vertical-align:top}
img{max-width:100%;border:1px solid #eee} figcaption{font-size:12px;color:#555}
.wrap{overflow-x:auto}
"""
# Click a header: sort by that column (numbers by their leading value), click again: reverse.
_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
    var body=t.tBodies[0],rows=Array.from(body.rows),dir=th.dataset.dir==='asc'?-1:1;th.dataset.dir=dir>0?'asc':'desc';
    var key=function(r){var s=r.cells[i]?r.cells[i].textContent.trim():'';var m=s.match(/^[+-]?\\d+(\\.\\d+)?/);
      return m?[0,parseFloat(m[0])]:[1,s];};
    rows.sort(function(a,b){var x=key(a),y=key(b);if(x[0]!==y[0])return x[0]-y[0];
      return (x[1]<y[1]?-1:x[1]>y[1]?1:0)*dir;});rows.forEach(function(r){body.appendChild(r);});});});});
"""


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<em>\1</em>", text)


def _cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [p.strip().replace("\\|", "|") for p in parts]


def markdown_to_html(md: str, level_offset: int = 1) -> str:
    """The subset of Markdown that summary.md uses: headings, bullet lists, tables, paragraphs, code spans."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = min(6, len(line) - len(line.lstrip("#")) + level_offset)
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(line))
            i += 2
            body = []
            while i < len(lines) and lines[i].startswith("|"):
                body.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(lines[i])) + "</tr>")
                i += 1
            out.append(f'<div class="wrap"><table class="sortable"><thead><tr>{head}</tr></thead>'
                       f"<tbody>{''.join(body)}</tbody></table></div>")
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


# The figures that answer "what should I deploy?" at a glance: they open each section, before any table.
LEAD = ("speedup_vs_compression", "accuracy_vs_size")


def _figures(folder: Path, names: Sequence[str] | None = None, skip: Sequence[str] = ()) -> str:
    """Inline ``<figure>``s of ``folder/plots``: those in ``names`` in that order (default: all, sorted), less
    ``skip``."""
    pngs = ([folder / "plots" / f"{n}.png" for n in names] if names is not None
            else sorted((folder / "plots").glob("*.png")))
    figs = []
    for png in pngs:
        if png.stem in skip or not png.is_file():
            continue
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        figs.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(png.stem)}">'
                    f"<figcaption>{html.escape(png.stem)}</figcaption></figure>")
    return "\n".join(figs)


def page(reports: Sequence[tuple[str, Path]], heading: str = "compressbench findings") -> str:
    """The HTML of one page with a section per (name, report folder holding summary.md and plots/)."""
    nav = " ".join(f'<a href="#{html.escape(name)}">{html.escape(name)}</a>' for name, _ in reports)
    sections = []
    for name, folder in reports:
        md = (folder / "summary.md").read_text(encoding="utf-8") if (folder / "summary.md").is_file() else ""
        md = re.sub(r"^# compressbench summary\n", "", md)
        lead = _figures(folder, LEAD)
        glance = f"<h2>At a glance: speedup vs compression, accuracy vs size</h2>\n{lead}\n" if lead else ""
        # The answer first, then the tables behind it, then every other figure.
        sections.append(f'<section id="{html.escape(name)}"><h1>{html.escape(name)}</h1>\n{glance}'
                        f"{markdown_to_html(md)}\n<h2>More figures</h2>\n{_figures(folder, skip=LEAD)}</section>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(heading)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(heading)}</h1><nav>{nav}</nav>\n"
            + "\n".join(sections) + f"\n<script>{_SCRIPT}</script></body></html>\n")


def write_html(reports: Sequence[tuple[str, Path]], out: Path, heading: str = "compressbench findings") -> Path:
    return atomic_write_text(out, page(reports, heading))
