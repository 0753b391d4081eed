"""``logger=tensorboard``: each run (each sweep job) becomes one TensorBoard run folder of event files.

TensorBoard has no artifact store: the scalars, the summary and config as text, the plots as images and the
config as hparams are logged; results.csv and exported models stay in the run dir.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compressbench.adapters import tensorboard as adapter
from compressbench.config import check, resolve_path, safe_slug
from compressbench.tracking.base import TRACKERS, Tracker
from compressbench.tracking.record import RunRecord


@dataclass
class TensorBoardOptions:
    """The ``logger`` node of ``logger=tensorboard`` (documented in conf/logger/tensorboard.yaml)."""

    name: str = "tensorboard"
    log_dir: str | None = None
    plots: bool = True

    def __post_init__(self) -> None:
        check(self.log_dir is None or bool(str(self.log_dir).strip()), "log_dir", self.log_dir,
              "a folder (runs go to <log_dir>/<name>/...), or null for <run dir>/tensorboard")


def log_dir(record: RunRecord, options: TensorBoardOptions) -> Path:
    """The run's TensorBoard folder, empty of earlier event files.

    Default ``<run dir>/tensorboard``: a run dir reused by a rerun (a fixed ``hydra.run.dir``) drops the old
    events, which TensorBoard would otherwise show beside the new ones. Under a shared ``log_dir``, each run
    gets a new folder — ``<name>/<run dir name>`` or ``<name>/<sweep time>/<job>`` — with ``-2``, ``-3``, ...
    if taken, so two runs never write into one.
    """
    if options.log_dir is None:
        folder = record.run_dir / "tensorboard"
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()
        return folder
    root = resolve_path(options.log_dir) / safe_slug(record.experiment)
    tags = record.tags
    base = root / Path(tags["sweep_dir"]).name / tags["job_num"] if "job_num" in tags else root / record.run_dir.name
    base.parent.mkdir(parents=True, exist_ok=True)
    candidate, n = base, 1
    while True:
        try:
            candidate.mkdir()  # atomic: of two jobs racing for a name, one gets it and the other moves on
            return candidate
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")


def log_tensorboard(record: RunRecord, options: TensorBoardOptions) -> str:
    """Write ``record`` as event files; returns the folder."""
    folder = log_dir(record, options)
    writer = adapter.Writer(folder)
    try:
        for p in [*record.curves, *record.stage_metrics]:
            writer.scalar(p.key, p.value, p.step)
        status = f"**{record.status}**" + (f": {record.tags['error']}" if "error" in record.tags else "")
        writer.text("status", f"{status}\n\nrun dir: `{record.run_dir}`; overrides: `{record.tags['overrides']}`")
        if record.summary:
            writer.text("summary", record.summary)
        writer.text("config", "```yaml\n" + record.config_text + "\n```")
        if options.plots:
            for png in sorted((record.run_dir / "plots").glob("*.png")):
                writer.png(f"plots/{png.stem}", png.read_bytes())
        writer.hparams({**record.params, "status": record.status}, sorted(record.final))
    finally:
        writer.close()
    return f"TensorBoard events in {folder}"


TRACKERS.register("tensorboard")(Tracker(TensorBoardOptions, log_tensorboard, adapter.available,
                                         adapter.INSTALL_HINT))
