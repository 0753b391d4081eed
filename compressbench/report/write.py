"""Writing a report: the table, summary.md and plots/ into the folder asked for, and curated copies per
experiment only into a findings dir that the caller names. Locks live in the temp dir, never beside outputs."""
from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import pandas as pd

import compressbench.report.figures as figures
import compressbench.report.html as html
import compressbench.report.recovery as recovery
import compressbench.report.repeats as repeats
import compressbench.report.stage_figures as stage_figures
from compressbench.config import safe_slug
from compressbench.infra.atomic import atomic_write_bytes, atomic_write_text
from compressbench.infra.locks import file_lock
from compressbench.report.collect import collect, credit_reader
from compressbench.report.labels import enrich
from compressbench.report.points import number_points, stage_table
from compressbench.report.style import Look, technique_colors, to_png
from compressbench.report.summary import summary_markdown
from compressbench.results import ordered_columns
from compressbench.results.per_image import FILE as HITS_FILE
from compressbench.results.per_image import stage_dir

DERIVED = ["technique", "credited_technique", "run_label", "swept", "swept_value", "speedup_best",
           "speedup_best_iqr", "speedup_baseline", "test_images", "run_dir", repeats.COLUMN]
STAGE_INPUTS = ("history.csv", HITS_FILE)  # what a report reads from a run's stage folders
FIGURES = ("speedup_vs_compression", "accuracy_change_vs_speedup", "accuracy_vs_size", "accuracy_vs_gzip_bytes",
           "accuracy_vs_encoded_bytes", "waterfall", "training_curves", "recovery", "accuracy_vs_latency",
           "accuracy_vs_swept")


def lock_path(out: Path) -> Path:
    """A lock file for writing the report in ``out``, outside it (so none lands in findings/)."""
    digest = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / "compressbench-locks" / f"report-{digest}.lock"


def _look(table: pd.DataFrame, raw: pd.DataFrame) -> Look:
    def vals(col: str) -> str:
        if col not in raw:
            return "?"
        values = raw[col].dropna()
        if pd.api.types.is_numeric_dtype(values):  # thread counts read back as floats: 2, not 2.0
            values = values.map(lambda v: int(v) if float(v).is_integer() else v)
        return ", ".join(sorted(values.astype(str).unique()))

    n = pd.to_numeric(table.get("test_images"), errors="coerce").dropna() if "test_images" in table else []
    images = f" · {int(max(n))} test images" if len(n) else ""
    # Timing and training use different thread counts (1 for repeatable latency, all cores to train): say which.
    threads = f" · timed on {vals('threads')} thread(s)" if "threads" in raw else ""
    if "train_threads" in raw and raw["train_threads"].notna().any():
        threads += f", trained on {vals('train_threads')}"
    return Look(technique_colors(table["credited_technique"]),
                f"{vals('model')} on {vals('dataset')}{images} · {vals('machine')}{threads}")


def all_figures(table: pd.DataFrame, root: Path, look: Look) -> dict[str, object]:
    made = {
        "speedup_vs_compression": figures.speedup_vs_compression(table, look),
        "accuracy_change_vs_speedup": figures.accuracy_change_vs_speedup(table, look),
        "accuracy_vs_size": figures.accuracy_vs_size(table, look, "size_bytes"),
        "accuracy_vs_gzip_bytes": figures.accuracy_vs_size(table, look, "gzip_bytes"),
        "accuracy_vs_encoded_bytes": figures.accuracy_vs_size(table, look, "encoded_bytes"),
        "waterfall": stage_figures.waterfall(table, look),
        "training_curves": stage_figures.training_curves(table, root, look),
        "recovery": recovery.figure(recovery.recoveries(table, root), recovery.baseline_val(table, root), look),
        "accuracy_vs_latency": stage_figures.accuracy_vs_latency(table, look),
        "accuracy_vs_swept": stage_figures.accuracy_vs_swept(table, look),
    }
    return {name: fig for name, fig in made.items() if fig is not None}


def build(rows: pd.DataFrame, root: str | Path | None = None) -> pd.DataFrame:
    """Enriched rows → the numbered stage table every figure and section reads; with ``root`` (the folder the
    rows were collected from) accuracy changes are paired over the test images wherever runs kept them."""
    if rows.empty:
        return pd.DataFrame()
    return number_points(stage_table(enrich(rows), credit_reader(root) if root is not None else None))


def write_report(root: str | Path, out: str | Path | None = None, rows: pd.DataFrame | None = None,
                 experiment: str | None = None, html_page: bool = False, figures: bool = True) -> pd.DataFrame:
    """Write ``summary.csv`` (or ``results.csv`` into a findings folder), ``summary.md``, ``plots/*.png``
    (unless not ``figures``) and, with ``html_page``, ``index.html`` into ``out`` (default ``root``) from the
    runs under ``root``; return the enriched rows."""
    root = Path(root)
    out = Path(out) if out is not None else root
    with file_lock(lock_path(out), what=f"the report in {out}"):
        collected, jobs, problems = collect(root)
        rows = collected if rows is None else rows
        if experiment is not None:  # a findings folder lists its own experiment's jobs only
            jobs = [j for j in jobs if j.get("experiment") in (None, experiment)]
        enriched = repeats.flag(enrich(rows)) if not rows.empty else rows
        table = build(rows, root)
        # Before any job has rows the table is its header alone: a reader polling a running sweep gets an empty
        # table, not a 0-byte file that pandas.read_csv refuses.
        columns = [c for c in dict.fromkeys(ordered_columns(enriched.to_dict("records")) + DERIVED)
                   if c in enriched.columns] if not enriched.empty else ordered_columns([])
        name = "summary.csv" if out == root else "results.csv"
        atomic_write_text(out / name, enriched.reindex(columns=columns).to_csv(index=False))
        atomic_write_text(out / "summary.md", summary_markdown(table, jobs, problems, root, enriched))
        made = all_figures(table, root, _look(table, enriched)) if figures and not table.empty else {}
        for fig_name, fig in made.items():
            atomic_write_bytes(out / "plots" / f"{fig_name}.png", to_png(fig))
        for stale in FIGURES if figures else ():  # a figure with nothing to show must not survive from before
            if stale not in made:
                (out / "plots" / f"{stale}.png").unlink(missing_ok=True)
        if html_page:
            html.write_html([(experiment or _label(enriched, root), out)], out / "index.html")
    return enriched


def _label(rows: pd.DataFrame, root: Path) -> str:
    names = sorted(rows["experiment"].dropna().astype(str).unique()) if "experiment" in rows else []
    return ", ".join(names) or root.name


def write_findings(root: str | Path, findings_dir: str | Path, html_page: bool = False) -> list[Path]:
    """One curated folder per experiment found under ``root``: ``<findings_dir>/<experiment>/``. Experiment
    names that are not safe folder names are skipped with a message (nothing is written outside)."""
    rows, _, _ = collect(root)
    findings_dir = Path(findings_dir)
    written = []
    for experiment, group in (rows.groupby("experiment", sort=True) if not rows.empty else []):
        try:
            slug = safe_slug(experiment)
        except ValueError as e:
            print(f"[compressbench] skipped {len(group)} rows: {e}", file=sys.stderr, flush=True)
            continue
        target = findings_dir / slug
        if target.resolve().parent != findings_dir.resolve():
            continue  # belt and braces: a slug cannot escape, but a symlink could
        copy_stage_inputs(Path(root), target, group)
        write_report(root, target, rows=group, experiment=slug)
        written.append(target)
    if html_page:
        folders = sorted(p.parent for p in findings_dir.glob("*/summary.md"))
        html.write_html([(p.name, p) for p in folders], findings_dir / "index.html")
    return written


def copy_stage_inputs(root: Path, target: Path, rows: pd.DataFrame) -> int:
    """Copy what a report reads from the run folders of ``rows`` (each stage's ``history.csv`` and per-image
    test hits) into ``target`` under the same relative run dirs, so that reporting ``target`` again draws the
    same training curves and pairs the same intervals. Returns how many files were copied."""
    copied, target_abs = 0, target.resolve()
    for run_dir, index, stage in rows[["run_dir", "stage_index", "stage"]].drop_duplicates().itertuples(index=False):
        if pd.isna(run_dir) or pd.isna(index):
            continue
        src, dst = stage_dir(root / str(run_dir), int(index), str(stage)), stage_dir(target / str(run_dir),
                                                                                  int(index), str(stage))
        if not dst.resolve().is_relative_to(target_abs) or src.resolve() == dst.resolve():
            continue  # a run dir read from a table never leads outside the findings folder
        for name in STAGE_INPUTS:
            if (src / name).is_file():
                atomic_write_bytes(dst / name, (src / name).read_bytes())
                copied += 1
    return copied
