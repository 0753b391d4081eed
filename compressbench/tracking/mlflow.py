"""``logger=mlflow``: each run (each sweep job) becomes one MLflow run, with its config, curves, rows and files.

The default store is a local folder, ``./mlruns`` beside ``outputs/`` (see ``conf/logger/mlflow.yaml``).
Parallel sweep jobs each create their own run by explicit id; on a local store (``file:``, ``sqlite:``) they
take turns under a file lock beside it, since neither store makes creating the experiment, or the store
itself, safe against a second process doing the same at the same moment.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from compressbench.adapters import mlflow as adapter
from compressbench.config import check, resolve_path
from compressbench.infra.locks import file_lock
from compressbench.tracking.base import TRACKERS, Tracker
from compressbench.tracking.record import STAGE_FILES, RunRecord, artifact_files

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: C:\runs is a path, not a scheme
_BARE_URIS = ("databricks", "databricks-uc", "uc")


@dataclass
class MlflowOptions:
    """The ``logger`` node of ``logger=mlflow`` (documented in conf/logger/mlflow.yaml)."""

    name: str = "mlflow"
    tracking_uri: str | None = None
    experiment: str | None = None
    stage_files: str = "export"
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(self.stage_files in STAGE_FILES, "stage_files", self.stage_files,
              "none (only each stage's small text files), export (also every file an export stage wrote) or "
              "all (checkpoints too)")
        check(self.experiment is None or bool(str(self.experiment).strip()), "experiment", self.experiment,
              "an MLflow experiment name, or null for the config's `name`")
        check(self.tracking_uri is None or bool(str(self.tracking_uri).strip()), "tracking_uri",
              self.tracking_uri, "an MLflow tracking URI (file:/path, sqlite:///mlflow.db, http://host:5000), a "
              "folder path, or null for $MLFLOW_TRACKING_URI or else ./mlruns")


def tracking_uri(options: MlflowOptions) -> str:
    """The URI to log to: the option, else ``$MLFLOW_TRACKING_URI``, else ``./mlruns``; a plain path (relative
    to where the command runs, like every path in the config) becomes a ``file:`` URI."""
    uri = options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "mlruns"
    if _SCHEME.match(uri) or uri in _BARE_URIS:
        return uri
    return adapter.file_uri(resolve_path(uri))


def _local_store(uri: str) -> Path | None:
    """The file a local store lives in (its folder, or the SQLite database), else None (a server)."""
    if uri.startswith("file:"):
        return adapter.local_path(uri)
    if uri.startswith("sqlite:///"):
        return resolve_path(uri[len("sqlite:///"):])
    return None


@contextmanager
def _turn(uri: str) -> Iterator[None]:
    """One process at a time on a local store (a server orders its own writes)."""
    store = _local_store(uri)
    with file_lock(store.parent / f".{store.name}.lock", f"the MLflow store {store}") if store else nullcontext():
        yield


def log_mlflow(record: RunRecord, options: MlflowOptions) -> str:
    """Log ``record`` as a new MLflow run; returns where it went. A failure part-way closes the run as FAILED
    with a ``tracking_error`` tag, then raises."""
    uri = tracking_uri(options)
    experiment = options.experiment or record.experiment
    tags = {**record.tags, **{str(k): str(v) for k, v in options.tags.items()}}
    if record.summary:
        tags["mlflow.note.content"] = record.summary  # the run's description in the MLflow UI (markdown)
    with _turn(uri), adapter.file_store_allowed(uri):
        run = adapter.Run(uri, experiment, record.run_name, tags)
        try:
            run.log_params({k: "null" if v is None else v for k, v in record.params.items()})
            run.log_metrics((p.key, p.value, p.step) for p in [*record.curves, *record.stage_metrics])
            for path, folder in artifact_files(record, options.stage_files):
                run.log_artifact(path, folder)
        except Exception as e:
            try:
                run.set_tags({"tracking_error": f"{type(e).__name__}: {e}"})
                run.end("failed")
            except Exception:  # noqa: BLE001 — the first error is the one to report
                pass
            raise
        run.end(record.status)
    return f"MLflow run {run.run_id} (experiment '{experiment}', {uri})"


TRACKERS.register("mlflow")(Tracker(MlflowOptions, log_mlflow, adapter.available, adapter.INSTALL_HINT))
