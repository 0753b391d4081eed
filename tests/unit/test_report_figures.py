"""The figures, rendered: declared speedup baselines, no overlapping text, zoomed axes, curves that show."""
from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest
from report_rows import BASE, baseline, compare_tree, row, write_run

from compressbench.report import build, collect
from compressbench.report.style import close, overlaps, text_boxes
from compressbench.report.write import _look, all_figures


def crowded_tree(root: Path) -> None:
    """Twelve branches, several on the same compression ratio and speedup: labels must still not collide."""
    for job in range(12):
        rid = f"r{job}"
        quant = job % 3 == 0
        final = row(rid, 1, f"s{job}", "quantize" if quant else "prune", 96.5 - 0.1 * (job % 4),
                    BASE / (2.5 if job % 2 else 1.0), method="m", encoded_bytes=BASE / (3 + job),
                    runtime="fx-int8" if quant else "eager", speedup=1.0 + 0.01 * (job % 3),
                    speedup_iqr=0.05, **({"speedup_vs_best_fp32": 0.12, "best_fp32_runtime": "onnxruntime"}
                                         if quant else {}))
        write_run(root, str(job), [baseline(rid, overrides=f"chain=[train,s{job}]"), final],
                  history={"00_train": [{"epoch": e, "train_loss": 1 / (e + 1), "val_acc": 90 + e}
                                        for e in range(5)]})


@pytest.fixture(params=["compare", "crowded"])
def report(request, tmp_path: Path):
    (compare_tree if request.param == "compare" else crowded_tree)(tmp_path)
    rows = collect(tmp_path)[0]
    table = build(rows)
    figures = all_figures(table, tmp_path, _look(table, rows))
    yield table, figures
    for fig in figures.values():
        close(fig)


def test_every_speedup_point_carries_a_declared_baseline(report):
    table, figures = report
    for name in ("speedup_vs_compression", "accuracy_change_vs_speedup"):
        fig = figures[name]
        points = fig.compressbench_points
        assert points and all(p["baseline"] for p in points), name
        texts = " ".join(t for t, _ in text_boxes(fig))
        mixed = len({p["baseline"] for p in points}) > 1
        for p in points:
            assert p["baseline"] in texts  # in the key table
            if mixed and not p["baseline"].startswith("best"):
                assert f"{p['point']} vs {p['baseline']}" in texts  # and on the point itself


def test_no_two_texts_overlap(report):
    _, figures = report
    for name, fig in figures.items():
        boxes = text_boxes(fig)
        clashes = [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if overlaps(ba, bb)]
        assert not clashes, f"{name}: {clashes[:5]}"


def test_figures_fit_a_screen(report):
    _, figures = report
    for name, fig in figures.items():
        w, h = fig.get_size_inches() * fig.dpi
        assert w <= 1400 and h <= 1100, (name, w, h)


def test_accuracy_axes_zoom_to_the_decision_band(tmp_path: Path):
    compare_tree(tmp_path)
    rows = collect(tmp_path)[0]
    table = build(rows)
    figures = all_figures(table, tmp_path, _look(table, rows))
    fig = figures["accuracy_vs_size"]
    low, high = fig.axes[0].get_ylim()
    assert high - low < 15 and low > 80  # not 10-100%: the chance-level point sits on the edge, noted
    assert "chance 10.0% is below the axis" in fig._suptitle.get_text()
    for f in figures.values():
        close(f)


def test_single_epoch_curves_are_drawn_and_kd_has_its_own_axis(tmp_path: Path):
    rows = [baseline("a"), row("a", 1, "kd", "distill", 96, 1e4, method="kd"),
            row("a", 2, "finetune", "train", 96.2, 1e4)]
    write_run(tmp_path, "0", rows, history={
        "00_train": [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_acc": 90 + e} for e in range(3)],
        "01_kd": [{"epoch": e, "train_loss": 9.0 / (e + 1), "val_acc": 91 + e} for e in range(3)],
        "02_finetune": [{"epoch": 0, "train_loss": 0.2, "val_acc": 95.0}]})
    table = build(collect(tmp_path)[0])
    fig = all_figures(table, tmp_path, _look(table, table))["training_curves"]
    loss, kd, acc = fig.axes
    one_epoch = [line for line in acc.get_lines() if len(line.get_xdata()) == 1]
    assert one_epoch and one_epoch[0].get_marker() not in (None, "None", "")  # a point, visible
    assert "1 ep" in " ".join(t.get_text() for t in acc.get_legend().get_texts())
    assert len(kd.get_lines()) == 1 and len(loss.get_lines()) == 2  # KD × T² never shares the CE axis
    close(fig)


def test_latency_from_two_runtimes_is_in_two_unpaired_panels(tmp_path: Path):
    rows = [baseline("a"), row("a", 1, "int8", "quantize", 96, 3e4, runtime="onnxruntime-int8",
                               latency_ms_p50=0.03)]
    write_run(tmp_path, "0", rows)
    table = build(collect(tmp_path)[0])
    fig = all_figures(table, tmp_path, _look(table, table))["accuracy_vs_latency"]
    assert len(fig.axes) == 2 and "UNPAIRED" in fig._suptitle.get_text()
    assert all(ax.get_xlim()[0] == 0 for ax in fig.axes)  # from 0: small differences look small
    close(fig)


def test_the_subtitle_tells_timing_threads_from_training_threads():
    rows = pd.DataFrame({"model": ["lenet5"], "dataset": ["digits"], "machine": ["m"], "threads": [1.0],
                         "train_threads": [2.0], "credited_technique": ["train"]})
    look = _look(rows, rows)
    assert "timed on 1 thread(s), trained on 2" in look.subtitle
