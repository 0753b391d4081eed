"""logger=tensorboard on a real chain, read back with TensorBoard's EventAccumulator: curves, per-stage
scalars, summary text, plots, hparams; one folder per run."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tensorboard", reason='pip install "compressbench[tensorboard]"')

from omegaconf import OmegaConf  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

from compressbench.pipeline.runner import run  # noqa: E402
from compressbench.results import read_csv  # noqa: E402
from compressbench.tracking import track_run  # noqa: E402


def events(folder: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture(scope="module")
def logged(tracking_cfg, tmp_path_factory):
    """One real run with logger=tensorboard (its stages from the session's cache): (run dir, rows, events)."""
    run_dir = tmp_path_factory.mktemp("tensorboard") / "run"
    rows = run(tracking_cfg("logger=tensorboard"), run_dir)
    return run_dir, rows, events(run_dir / "tensorboard")


def test_epoch_curves_match_history_csv(logged):
    run_dir, rows, acc = logged
    for stage, epochs in (("train", 3), ("finetune", 2)):
        (folder,) = (run_dir / "stages").glob(f"*_{stage}")
        history = read_csv(folder / "history.csv")
        for column in ("train_loss", "val_acc", "lr"):
            scalars = acc.Scalars(f"{stage}/epoch/{column}")
            assert [s.step for s in scalars] == list(range(1, epochs + 1))
            assert [s.value for s in scalars] == pytest.approx([float(h[column]) for h in history], rel=1e-6)


def test_results_rows_are_scalars_along_the_chain(logged):
    run_dir, rows, acc = logged
    for row in read_csv(run_dir / "results.csv"):
        (scalar,) = acc.Scalars(f"{row['stage']}/size_bytes")
        assert scalar.step == int(row["stage_index"]) and scalar.value == pytest.approx(float(row["size_bytes"]))
    chain = acc.Scalars("chain/test_acc")
    assert [s.step for s in chain] == [0, 1, 2]
    assert [s.value for s in chain] == pytest.approx([r["test_acc"] for r in rows], rel=1e-6)


def test_summary_plots_and_hparams(logged):
    run_dir, rows, acc = logged
    summary = acc.Tensors("summary/text_summary")[0].tensor_proto.string_val[0].decode()
    assert summary == (run_dir / "summary.md").read_text()
    assert b"ok" in acc.Tensors("status/text_summary")[0].tensor_proto.string_val[0]
    plots = {f"plots/{p.stem}" for p in (run_dir / "plots").glob("*.png")}
    assert plots and plots <= set(acc.Tags()["images"])
    image = acc.Images("plots/accuracy_vs_size")[0]
    assert image.encoded_image_string == (run_dir / "plots/accuracy_vs_size.png").read_bytes()
    assert image.width > 100 and image.height > 100
    content = acc.PluginTagToContent("hparams")
    start = next(plugin_data_pb2.HParamsPluginData.FromString(c).session_start_info for c in content.values()
                 if plugin_data_pb2.HParamsPluginData.FromString(c).HasField("session_start_info"))
    assert start.hparams["train.epochs"].number_value == 3
    assert start.hparams["status"].string_value == "ok"
    assert start.hparams["logger.name"].string_value == "tensorboard"


def test_each_run_gets_its_own_folder_and_a_rerun_replaces_its_events(logged, tmp_path):
    run_dir, rows, acc = logged
    cfg = OmegaConf.load(run_dir / "config.yaml")
    track_run(cfg, run_dir)  # the same run dir logged again: still one set of events in it
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert len(events(run_dir / "tensorboard").Scalars("train/epoch/val_acc")) == 3
    cfg.logger = {"name": "tensorboard", "log_dir": str(tmp_path / "tb")}
    track_run(cfg, run_dir)
    track_run(cfg, run_dir)  # a shared log dir: two runs with one run-dir name get two folders
    folders = sorted(p.relative_to(tmp_path / "tb").as_posix() for p in (tmp_path / "tb").glob("*/*"))
    assert folders == [f"{cfg.name}/{run_dir.name}", f"{cfg.name}/{run_dir.name}-2"]
    for folder in folders:
        assert len(events(tmp_path / "tb" / folder).Scalars("chain/test_acc")) == 3
