"""compressbench: measure what each compression technique costs in accuracy and buys in size and speed."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressbench.infra.version import __version__

__all__ = ["__version__", "run"]

if TYPE_CHECKING:
    import pandas as pd


def run(experiment: str | None = None, overrides: list[str] | tuple[str, ...] = (),
        output_dir: str | Path | None = None, *, model: Any = None, data: Any = None) -> pd.DataFrame:
    """Compose the same config as the CLI (``+experiment=NAME`` plus ``overrides``), run it, return the rows.

    Example: ``compressbench.run("lenet5_prune", overrides=["prune.amount=0.7"])``. Output goes to
    ``output_dir`` (default ``outputs/<name>/<time>``, as on the command line).

    Args:
        model: your ``nn.Module`` (its initial weights are where the chain starts; it is copied, never
            changed), or a model config name (``"resnet20"``). Its class's source, structure and initial
            weights are part of every cache key.
        data: ``(train, test)`` torch Datasets of ``(image, label)`` (images uint8 or floats in [0, 1], one
            square size; validation is carved from train), or a dataset config name (``"cifar10"``).
    """
    import time

    import pandas as pd
    from hydra import compose, initialize_config_dir

    from compressbench.config import conf_dir
    from compressbench.pipeline import runner

    overrides = [*([f"+experiment={experiment}"] if experiment else []), *_given(model, data), *overrides]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        full = compose("config", overrides=overrides, return_hydra_config=True)
        if str(full.hydra.mode) == "RunMode.MULTIRUN" or str(full.hydra.mode) == "MULTIRUN":
            raise ValueError(f"experiment '{experiment}' is a sweep (hydra.mode: MULTIRUN); run it with the command "
                             f"line (python -m compressbench +experiment={experiment}), or run one of its "
                             f"branches here by passing its swept value, e.g. overrides=['chain=[train,int8]', "
                             f"'hydra.mode=RUN']")
        cfg = compose("config", overrides=overrides)
    out = Path(output_dir) if output_dir else Path("outputs") / str(cfg.name) / time.strftime("%Y-%m-%d_%H-%M-%S")
    rows: list[dict[str, Any]] = runner.run(cfg, out, overrides, memo=runner.process_memo())
    return pd.DataFrame(rows)


def _given(model: Any, data: Any) -> list[str]:
    """The overrides that put ``model`` and ``data`` in the config: a config name as is, Python objects as the
    nodes naming them (held in this process: ``model=module``, ``dataset=datasets``)."""
    out: list[str] = []
    if isinstance(model, str):
        out.append(f"model={model}")
    elif model is not None:
        from compressbench.models import register_module

        node = register_module(model)
        out += ["model=module", f"model.cls='{node['cls']}'", f"model.digest={node['digest']}"]
    if isinstance(data, str):
        out.append(f"dataset={data}")
    elif data is not None:
        from compressbench.data.given import register_datasets

        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise TypeError("data= takes (train, test) torch Datasets of (image, label), or a dataset config name "
                            "such as 'cifar10'")
        node = register_datasets(*data)
        out += ["dataset=datasets", f"dataset.digest={node['digest']}", f"dataset.label='{node['label']}'"]
    return out
