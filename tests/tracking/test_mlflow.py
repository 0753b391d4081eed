"""logger=mlflow on a real chain, read back with MlflowClient: params, epoch curves, per-stage metrics,
artifacts, tags, a failed run, a tracker that cannot write, and two processes logging at once."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest

mlflow = pytest.importorskip("mlflow", reason='pip install "compressbench[mlflow]"')

from compressbench.adapters.mlflow import file_store_allowed  # noqa: E402
from compressbench.pipeline.runner import RunFailed, run  # noqa: E402
from compressbench.results import read_csv  # noqa: E402


def client_for(uri: str):
    from mlflow.tracking import MlflowClient

    with file_store_allowed(uri):
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments()  # opens (and caches) the store while it is allowed
    return client


def runs_of(client, experiment: str, **tags: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    query = " and ".join(f"tags.{k} = '{v}'" for k, v in tags.items())
    return client.search_runs([exp.experiment_id], filter_string=query) if exp else []


def artifact_paths(client, run_id: str, folder: str | None = None) -> set[str]:
    out = set()
    for a in client.list_artifacts(run_id, folder):
        out |= artifact_paths(client, run_id, a.path) if a.is_dir else {a.path}
    return out


@pytest.fixture(scope="module")
def logged(tracking_cfg, tmp_path_factory):
    """One real run with logger=mlflow into a fresh local store: (run dir, rows, client, MLflow run)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = (root / "mlruns").as_uri()
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    cfg = tracking_cfg("logger=mlflow", f"logger.tracking_uri={root / 'mlruns'}", "name=tracked")
    rows = run(cfg, root / "run", ["logger=mlflow"])
    leaked = "MLFLOW_ALLOW_FILE_STORE" in os.environ
    client = client_for(uri)
    (mlflow_run,) = runs_of(client, "tracked")
    return root / "run", rows, client, mlflow_run, uri, leaked


def test_config_is_logged_as_flat_string_params(logged):
    run_dir, rows, client, mlflow_run, uri, leaked = logged
    params = mlflow_run.data.params
    assert params["name"] == "tracked" and params["train.epochs"] == "3" and params["finetune.epochs"] == "2"
    assert json.loads(params["chain"]) == ["train", "finetune", "export"]
    assert params["logger.name"] == "mlflow" and params["dataset.name"] == "synthetic"
    assert not leaked  # the file-store permission did not outlive the logging


def test_epoch_curves_match_history_csv(logged):
    run_dir, rows, client, mlflow_run, uri, leaked = logged
    for stage, epochs in (("train", 3), ("finetune", 2)):
        (folder,) = (run_dir / "stages").glob(f"*_{stage}")
        history = read_csv(folder / "history.csv")
        for column in ("train_loss", "val_acc"):
            points = sorted(client.get_metric_history(mlflow_run.info.run_id, f"{stage}/epoch/{column}"),
                            key=lambda m: m.step)
            assert [m.step for m in points] == list(range(1, epochs + 1))
            assert [m.value for m in points] == pytest.approx([float(h[column]) for h in history])


def test_each_stage_row_is_logged_at_its_stage_index(logged):
    run_dir, rows, client, mlflow_run, uri, leaked = logged
    metrics = mlflow_run.data.metrics
    csv_rows = read_csv(run_dir / "results.csv")
    for row in csv_rows:
        for column in ("test_acc", "size_bytes", "compression_ratio", "latency_ms_p50", "wall_s"):
            assert metrics[f"{row['stage']}/{column}"] == pytest.approx(float(row[column])), column
        (point,) = client.get_metric_history(mlflow_run.info.run_id, f"{row['stage']}/test_acc")
        assert point.step == int(row["stage_index"])
    chain = sorted(client.get_metric_history(mlflow_run.info.run_id, "chain/test_acc"), key=lambda m: m.step)
    assert [m.step for m in chain] == [0, 1, 2]
    assert [m.value for m in chain] == pytest.approx([r["test_acc"] for r in rows])
    assert "export/speedup_vs_best_fp32" in metrics  # the chain's last stage is timed against every fp32 route
    assert not any(k.endswith(("/run_id", "/git_sha", "/seed", "/stage_index")) for k in metrics)


def test_files_are_artifacts_without_checkpoints(logged):
    run_dir, rows, client, mlflow_run, uri, leaked = logged
    paths = artifact_paths(client, mlflow_run.info.run_id)
    assert {"results.csv", "summary.md", "config.yaml", "status.json"} <= paths
    assert "plots/accuracy_vs_size.png" in paths
    (export,) = (run_dir / "stages").glob("*_export")
    exported = {f"stages/{export.name}/{p.name}" for p in export.iterdir()}
    assert exported and exported <= paths and f"stages/{export.name}/manifest.json" in paths
    assert "stages/00_train/history.csv" in paths
    assert not any(p.endswith((".pt",)) and "/00_train/" in p for p in paths)  # stage_files=export: no checkpoints


def test_tags_say_status_and_where_the_run_is(logged):
    run_dir, rows, client, mlflow_run, uri, leaked = logged
    tags = mlflow_run.data.tags
    assert mlflow_run.info.status == "FINISHED"
    assert tags["status"] == "ok" and tags["run_dir"] == str(run_dir.resolve())
    assert tags["overrides"] == "logger=mlflow" and tags["config_hash"] == rows[0]["run_id"]
    assert tags["stage_status"] == "train=ok finetune=ok export=ok"
    assert tags["mlflow.note.content"].startswith("# compressbench summary")


def test_a_failed_run_is_logged_as_failed(logged, tracking_cfg):
    run_dir, rows, client, mlflow_run, uri, leaked = logged
    failed_dir = run_dir.parent / "failed"
    cfg = tracking_cfg("logger=mlflow", f"logger.tracking_uri={uri}", "name=tracked", "train.lr=1e12",
                       "train.momentum=0", "runtime.cache=false")
    with pytest.raises(RunFailed, match="diverged"):
        run(cfg, failed_dir)
    (failed,) = runs_of(client, "tracked", run_dir=str(failed_dir.resolve()))
    assert failed.info.status == "FAILED" and failed.data.tags["status"] == "failed"
    assert "diverged" in failed.data.tags["error"] and "train=diverged" in failed.data.tags["stage_status"]
    assert "results.csv" in artifact_paths(client, failed.info.run_id)


def test_a_tracker_that_cannot_write_leaves_the_run_ok(tracking_cfg, tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder would go")
    cfg = tracking_cfg("logger=mlflow", f"logger.tracking_uri={blocker / 'mlruns'}", "chain=[train]")
    with caplog.at_level(logging.WARNING, logger="compressbench.tracking"):
        rows = run(cfg, tmp_path / "run")
    assert [r["status"] for r in rows] == ["ok"]
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "ok"
    (warning,) = [r for r in caplog.records if r.name == "compressbench.tracking"]
    assert warning.levelno == logging.WARNING
    assert "logger=mlflow could not log" in warning.getMessage() and "results.csv" in warning.getMessage()


JOB = """
import sys, time
from pathlib import Path
from omegaconf import OmegaConf
import compressbench.tracking as tracking
run_dir, uri, num, barrier = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
cfg = OmegaConf.load(run_dir / "config.yaml")
cfg.logger = {"name": "mlflow", "tracking_uri": uri}
# What a Hydra sweep job would report about itself.
tracking.hydra_job = lambda: {"sweep_dir": str(run_dir.parent), "job_num": num, "job_id": "j" + num}
(barrier / num).touch()
while len(list(barrier.iterdir())) < 2:  # start logging together, into a store neither has created yet
    time.sleep(0.005)
tracking.track_run(cfg, run_dir)
"""


def test_two_jobs_logging_at_once_get_two_runs(logged, tmp_path):
    run_dir = logged[0]
    sweep, barrier = tmp_path / "sweep", tmp_path / "barrier"
    barrier.mkdir()
    for num in ("0", "1"):
        shutil.copytree(run_dir, sweep / num, ignore=shutil.ignore_patterns("*.pt", "*.pt2", "*.onnx"))
        status = json.loads((sweep / num / "status.json").read_text())
        (sweep / num / "status.json").write_text(json.dumps({**status, "overrides": f"finetune.lr=0.{num}"}))
    uri = (tmp_path / "mlruns").as_uri()
    procs = [subprocess.Popen([sys.executable, "-c", JOB, str(sweep / num), uri, num, str(barrier)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for num in ("0", "1")]
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0 and "could not log" not in err, err
    client = client_for(uri)
    assert [e.name for e in client.search_experiments()].count("tracked") == 1  # not one per racing job
    runs = runs_of(client, "tracked")
    assert len({r.info.run_id for r in runs}) == 2
    assert sorted(r.data.tags["job_num"] for r in runs) == ["0", "1"]
    assert {r.data.tags["sweep_dir"] for r in runs} == {str(sweep)}
    assert sorted(r.info.run_name for r in runs) == ["#0 finetune.lr=0.0", "#1 finetune.lr=0.1"]
    for r in runs:  # each run complete, none holding the other's points
        assert r.info.status == "FINISHED"
        assert len(client.get_metric_history(r.info.run_id, "train/epoch/val_acc")) == 3
        assert r.data.tags["run_dir"] == str(sweep / r.data.tags["job_num"])
