"""The only importer of MLflow (``logger=mlflow``): one tracking run through ``MlflowClient``.

We use the client with explicit run ids, never ``mlflow.start_run``: the fluent API keeps one active run per
process in global state (and in ``MLFLOW_RUN_ID``), which a notebook that already has a run open, or several
runs in one process, would mix up. MLflow is imported inside the functions so ``import compressbench`` does not
load it. Optional dependency: ``pip install "compressbench[mlflow]"`` (``mlflow-skinny`` is enough).
"""
from __future__ import annotations

import importlib.util
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

INSTALL_HINT = 'pip install "compressbench[mlflow]"'
# MLflow's own limits (mlflow.utils.validation), used when an old version does not define them all.
_LIMITS = {"MAX_PARAM_VAL_LENGTH": 500, "MAX_TAG_VAL_LENGTH": 5000, "MAX_ENTITY_KEY_LENGTH": 250,
           "MAX_PARAMS_TAGS_PER_BATCH": 100, "MAX_METRICS_PER_BATCH": 1000}
_BAD_KEY_CHARS = re.compile(r"[^\w\-./ :]")  # what MLflow accepts in metric, param and tag names
STATUSES = {"ok": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


def available() -> bool:
    return importlib.util.find_spec("mlflow") is not None


def require() -> None:
    if not available():
        raise ImportError(f"logger=mlflow needs MLflow: {INSTALL_HINT}")


def _limit(name: str) -> int:
    from mlflow.utils import validation

    return int(getattr(validation, name, _LIMITS[name]))


def clean_key(key: str) -> str:
    """``key`` with the characters MLflow refuses replaced (a stage may be named anything YAML allows)."""
    return _BAD_KEY_CHARS.sub("_", key)[: _limit("MAX_ENTITY_KEY_LENGTH")]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@contextmanager
def file_store_allowed(uri: str) -> Iterator[None]:
    """For the ``with`` body, let MLflow open a file store: MLflow 3 refuses one (./mlruns) unless
    ``MLFLOW_ALLOW_FILE_STORE`` is set, and ours is the default (mlflow-skinny has no database driver). A user's
    own setting of the variable is left as it is; nothing outlives the block."""
    if not uri.startswith("file:") or "MLFLOW_ALLOW_FILE_STORE" in os.environ:
        yield
        return
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


def client(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri``; a ``file:`` store needs ``file_store_allowed`` around its use."""
    require()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def experiment_id(mlflow_client: Any, name: str) -> str:
    """The id of experiment ``name``, created if absent; another process creating it at the same moment is fine."""
    from mlflow.exceptions import MlflowException

    for _ in range(3):
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                raise RuntimeError(f"MLflow experiment '{name}' is deleted; restore it (mlflow experiments "
                                   f"restore --experiment-id {experiment.experiment_id}) or set logger.experiment")
            return experiment.experiment_id
        try:
            return mlflow_client.create_experiment(name)
        except MlflowException as e:
            if "RESOURCE_ALREADY_EXISTS" not in str(getattr(e, "error_code", "")):
                raise
            time.sleep(0.2)  # lost the race: the other process's experiment is there now
    raise RuntimeError(f"could not create or find the MLflow experiment '{name}'")


class Run:
    """One MLflow run, logged to through the client by its id.

    Args:
        uri: the tracking URI.
        experiment: the experiment's name (created if absent).
        run_name: shown in the MLflow UI.
        tags: set when the run is created.
    """

    def __init__(self, uri: str, experiment: str, run_name: str, tags: Mapping[str, str]) -> None:
        self.client = client(uri)
        self.experiment_id = experiment_id(self.client, experiment)
        limit = _limit("MAX_TAG_VAL_LENGTH")
        run = self.client.create_run(self.experiment_id, run_name=_cut(run_name, 250),
                                     tags={clean_key(k): _cut(str(v), limit) for k, v in tags.items()})
        self.run_id: str = run.info.run_id
        self.artifact_uri: str = run.info.artifact_uri

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params as strings, cut to MLflow's length limit (a param is immutable: log each once)."""
        from mlflow.entities import Param

        limit = _limit("MAX_PARAM_VAL_LENGTH")
        items = [Param(clean_key(k), _cut(str(v), limit)) for k, v in params.items()]
        for chunk in _chunks(items, _limit("MAX_PARAMS_TAGS_PER_BATCH")):
            self.client.log_batch(self.run_id, params=chunk)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        limit = _limit("MAX_TAG_VAL_LENGTH")
        items = [RunTag(clean_key(k), _cut(str(v), limit)) for k, v in tags.items()]
        for chunk in _chunks(items, _limit("MAX_PARAMS_TAGS_PER_BATCH")):
            self.client.log_batch(self.run_id, tags=chunk)

    def log_metrics(self, points: Iterable[tuple[str, float, int]]) -> None:
        """``(key, value, step)`` points, in batches of MLflow's size limit."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(clean_key(key), float(value), now, int(step)) for key, value, step in points]
        for chunk in _chunks(items, _limit("MAX_METRICS_PER_BATCH")):
            self.client.log_batch(self.run_id, metrics=chunk)

    def log_artifact(self, path: Path, folder: str) -> None:
        """Copy (or upload) ``path`` into the run's artifacts under ``folder`` ("" for the top)."""
        self.client.log_artifact(self.run_id, str(path), folder or None)

    def end(self, status: str) -> None:
        """Close the run as ``status`` (ok / failed / interrupted → FINISHED / FAILED / KILLED)."""
        self.client.set_terminated(self.run_id, STATUSES.get(status, "FINISHED"))


def local_path(uri: str) -> Path | None:
    """The local directory of a ``file:`` URI, else None."""
    if not uri.startswith("file:"):
        return None
    require()
    from mlflow.utils.file_utils import local_file_uri_to_path

    return Path(local_file_uri_to_path(uri))


def file_uri(path: Path) -> str:
    """``path`` as the ``file:`` URI MLflow writes (absolute, percent-encoded)."""
    return path.resolve().as_uri()
