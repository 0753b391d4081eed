"""The figures, rendered: declared speedup baselines, no overlapping text, zoomed axes, curves that show."""
from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest
from report_rows import BASE, baseline, compare_tree, row, write_run

from compressbench.report import build, collect
from compressbench.report.figures import accuracy_change_vs_speedup, speedup_vs_compression
from compressbench.report.stage_figures import accuracy_vs_latency
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


def _speedup_figures(table: pd.DataFrame) -> dict:
    look = _look(table, table)
    return {"speedup_vs_compression": speedup_vs_compression(table, look),
            "accuracy_change_vs_speedup": accuracy_change_vs_speedup(table, look)}


def _star(ax) -> list[tuple[float, float]]:
    return [(float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in ax.get_lines()
            if line.get_marker() == "*"]


def test_the_baseline_sits_at_its_own_speed_on_a_best_fp32_axis(tmp_path: Path):
    # ORT int8 is 2× the fastest fp32 route (ONNX Runtime) and 10× eager fp32: eager B itself is 0.2× that route.
    write_run(tmp_path, "0", [baseline("a"), row("a", 1, "int8", "quantize", 96.5, 3e4, runtime="onnxruntime-int8",
                                                 speedup=2.0, speedup_vs_best_fp32=2.0, speedup_vs_onnxruntime_fp32=2.0,
                                                 speedup_vs_eager_fp32=10.0, best_fp32_runtime="onnxruntime")])
    table = build(collect(tmp_path)[0])
    figures = _speedup_figures(table)
    (x, y), = _star(figures["speedup_vs_compression"].axes[0])
    assert (x, y) == (1.0, pytest.approx(0.2))  # not at 1×: that is the route it is slower than
    (x, y), = _star(figures["accuracy_change_vs_speedup"].axes[0])
    assert (x, y) == (pytest.approx(0.2), 0.0)
    assert "baseline (eager fp32)" in " ".join(t for t, _ in text_boxes(figures["speedup_vs_compression"]))
    for fig in figures.values():
        close(fig)


def test_fp32_models_timed_on_every_route_do_not_move_the_baseline(tmp_path: Path):
    # A pruned fp32 model is 2.35x on ONNX Runtime and 1.74x on eager, each against B on that route: the ratio
    # of those is not B's speed. Only the int8 row (one model time in both) or a measured column places B.
    rows = [baseline("a"),
            row("a", 1, "int8", "quantize", 96.5, 3e4, runtime="onnxruntime-int8", speedup=2.0,
                speedup_vs_best_fp32=2.0, speedup_vs_onnxruntime_fp32=2.0, speedup_vs_eager_fp32=10.0,
                best_fp32_runtime="onnxruntime"),
            row("a", 2, "pruned", "train", 90.0, 2e4, runtime="eager", speedup=1.74, speedup_vs_best_fp32=2.35,
                speedup_vs_onnxruntime_fp32=2.35, speedup_vs_eager_fp32=1.74, best_fp32_runtime="onnxruntime")]

    def star_height(folder: Path) -> float:
        write_run(folder, "0", rows)
        figures = _speedup_figures(build(collect(folder)[0]))
        (_, y), = _star(figures["speedup_vs_compression"].axes[0])
        for fig in figures.values():
            close(fig)
        return y

    assert star_height(tmp_path / "derived") == pytest.approx(0.2)
    for r in rows[1:]:
        r["baseline_eager_vs_onnxruntime_fp32"] = 0.29
    assert star_height(tmp_path / "measured") == pytest.approx(0.29)


def test_the_baseline_is_not_drawn_where_its_speed_on_that_axis_is_unknown(tmp_path: Path):
    write_run(tmp_path, "0", [baseline("a"), row("a", 1, "int8", "quantize", 96.5, 3e4, runtime="fx-int8",
                                                 speedup_vs_best_fp32=0.5, best_fp32_runtime="openvino")])
    table = build(collect(tmp_path)[0])
    figures = _speedup_figures(table)
    fig = figures["speedup_vs_compression"]
    assert not _star(fig.axes[0])
    assert "not drawn vs best fp32 (openvino)" in " ".join(t for t, _ in text_boxes(fig))
    for f in figures.values():
        close(f)


def test_each_speedup_baseline_has_its_own_legend_marker(tmp_path: Path):
    final = {"onnxruntime": "onnxruntime-int8", "openvino": "openvino-int8", "eager": "fx-int8"}
    for job, (route, runtime) in enumerate(final.items()):
        rid = f"r{job}"
        write_run(tmp_path, str(job), [baseline(rid, overrides=f"chain=[train,q{job}]"),
                                       row(rid, 1, f"q{job}", "quantize", 96.5, 3e4, runtime=runtime,
                                           speedup_vs_best_fp32=1.5, best_fp32_runtime=route)])
    write_run(tmp_path, "9", [baseline("k", overrides="chain=[train,kd]"),
                              row("k", 1, "kd", "distill", 96.0, 1e4, speedup=1.4)])
    table = build(collect(tmp_path)[0])
    figures = _speedup_figures(table)
    for name in ("speedup_vs_compression", "accuracy_change_vs_speedup"):
        legend = figures[name].axes[0].get_legend()
        markers = {h.get_label(): h.get_marker() for h in legend.legend_handles}
        assert len(markers) == 5 and len(set(markers.values())) == 5, markers  # 4 baselines and B
    for fig in figures.values():
        close(fig)


@pytest.mark.parametrize("runtimes", [4, 6])
def test_raw_latency_shows_every_runtime_or_names_those_it_leaves_out(tmp_path: Path, runtimes: int):
    names = ["fx-int8", "onnxruntime-int8", "pt2e-int8-compiled", "openvino-int8", "torchscript-int8", "tflite"]
    rows = [baseline("a")] + [row("a", i + 1, f"q{i}", "quantize", 96, 3e4, runtime=name, latency_ms_p50=0.1 + i / 10)
                              for i, name in enumerate(names[:runtimes])]
    write_run(tmp_path, "0", rows)
    table = build(collect(tmp_path)[0])
    fig = accuracy_vs_latency(table, _look(table, table))
    shown = " ".join(ax.get_title() for ax in fig.axes)
    assert len(fig.axes) == min(runtimes + 1, 5) and "eager" in shown  # the baseline's panel always
    missing = [n for n in ["eager", *names[:runtimes]] if f"runtime {n} " not in shown + " "]
    assert all(f"runtime {n}" in fig._suptitle.get_text() for n in missing) and len(missing) == max(0, runtimes - 4)
    boxes = text_boxes(fig)
    assert not [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if overlaps(ba, bb)]
    close(fig)
