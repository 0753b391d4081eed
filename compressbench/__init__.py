"""compressbench: measure what each compression technique costs in accuracy and buys in size and speed."""
from __future__ import annotations

__version__ = "0.1.0"

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def run(experiment: str | None = None, overrides: list[str] | tuple[str, ...] = (),
        output_dir: str | Path | None = None) -> pd.DataFrame:
    """Compose the same config as the CLI (``+experiment=NAME`` plus ``overrides``), run it, return the rows.

    Example: ``compressbench.run("lenet5_prune", overrides=["prune.amount=0.7"])``. Output goes to
    ``output_dir`` (default ``outputs/<name>/<time>``, as on the command line).
    """
    import time

    import pandas as pd
    from hydra import compose, initialize_config_dir

    from compressbench.config import conf_dir
    from compressbench.pipeline import runner

    overrides = [*([f"+experiment={experiment}"] if experiment else []), *overrides]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        full = compose("config", overrides=overrides, return_hydra_config=True)
        if str(full.hydra.mode) == "RunMode.MULTIRUN" or str(full.hydra.mode) == "MULTIRUN":
            raise ValueError(f"experiment '{experiment}' is a sweep (hydra.mode: MULTIRUN); run it with the command "
                             f"line (python -m compressbench +experiment={experiment}), or run one of its "
                             f"branches here by passing its swept value, e.g. overrides=['chain=[train,int8]', "
                             f"'hydra.mode=RUN']")
        cfg = compose("config", overrides=overrides)
    out = Path(output_dir) if output_dir else Path("outputs") / str(cfg.name) / time.strftime("%Y-%m-%d_%H-%M-%S")
    rows: list[dict[str, Any]] = runner.run(cfg, out, overrides)
    return pd.DataFrame(rows)
