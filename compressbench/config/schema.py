"""Config schema: where the YAML lives, the typed stage/runtime/measure configs and their errors.

Each stage kind declares a dataclass of its options next to its function (``stages/train.py``); registering the
stage stores that dataclass in Hydra's ConfigStore as ``stage/<kind>``, so the YAML says
``- stage@finetune: train`` and Hydra itself rejects typo'd keys and wrong types at the command line.
``validate`` then builds every typed config (running the range checks in ``__post_init__``) and checks the model
and dataset names — all before any data is loaded or any model trained.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


def conf_dir() -> Path:
    """The directory holding ``config.yaml``: inside the installed wheel, else the repository's ``conf/``."""
    here = Path(__file__).resolve().parent.parent  # the compressbench package
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"compressbench's conf/ directory was not found next to {here}; reinstall the package")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and what is allowed."""


class BadValue(ConfigError):
    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed: {allowed}")

    def under(self, prefix: str) -> BadValue:
        """The same error with its key qualified by the config node it sits in (``finetune.lr``)."""
        return BadValue(f"{prefix}.{self.key}", self.value, self.allowed)


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise a BadValue naming ``key``, ``value`` and what is ``allowed`` unless ``ok``."""
    if not ok:
        raise BadValue(key, value, allowed)


@dataclass
class StageConfig:
    """Options every stage kind has: ``stage``, the kind (the STAGES registry key). A kind's options dataclass
    extends it with values and their range checks (``__post_init__``, torch-free); everything else the pipeline
    asks of a kind is declared on its ``stages.kind.StageKind``."""

    stage: str = ""


@dataclass
class RuntimeConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms; slower on GPU
    threads: int | None = None  # intra-op threads for training; None = torch's default
    # The training route (engine/route.py says what auto picks and why): autocast precision, memory format and
    # torch.compile. Precision is part of every cache key; memory format and compilation are recorded only.
    amp: str = "auto"  # auto (CUDA: bf16/fp16; CPU: bf16 for conv nets where the CPU has native bf16) | bf16 | fp16 | off
    channels_last: str = "auto"  # auto (CUDA: everywhere; CPU: conv nets while training) | true (everywhere) | false
    compile: str = "auto"  # torch.compile the training forward/backward: auto (on CUDA) | true | false
    cache: bool = True  # reuse earlier stages from paths.cache_dir
    progress: bool = True  # tqdm bars
    max_epochs: int | None = None  # at most this many epochs in every training stage (+debug=smoke); keyed

    def __post_init__(self) -> None:
        check(self.device == "auto" or self.device.split(":")[0] in {"cpu", "cuda", "mps"}, "device",
              self.device, "auto, cpu, cuda, cuda:N or mps")
        check(self.amp in {"auto", "bf16", "fp16", "off"}, "amp", self.amp, "auto, bf16, fp16 or off")
        for key in ("channels_last", "compile"):
            check(str(getattr(self, key)).lower() in {"auto", "true", "false"}, key, getattr(self, key),
                  "auto, true or false")
        check(self.threads is None or self.threads >= 1, "threads", self.threads, "null or >= 1")
        check(self.max_epochs is None or self.max_epochs >= 1, "max_epochs", self.max_epochs, "null or >= 1")


@dataclass
class MeasureConfig:
    latency: bool = True  # false skips timing (tests, quick looks); latency columns stay empty
    threads: int = 1  # intra-op threads for batch-1 latency (DESIGN.md §6: 1 thread is repeatable)
    batch_size: int = 32  # batch for throughput_ips
    throughput_threads: int | None = None  # None = all cores
    warmup: int = 5
    iters: int = 10  # timed calls per round, at least (a quick model gets more: see min_time_s)
    rounds: int = 10  # at most this many interleaved reference/candidate rounds for the paired speedup
    # Adaptive timing: after min_rounds (at most `rounds`) and min_time_s seconds of timed calls, stop once the
    # per-round ratios' 95% interval is within ±tolerance (measure/latency.py); tolerance 0 always times `rounds`
    # rounds. Rounds are sized so that min_rounds of them span min_time_s: a disturbance shorter than half of
    # that moves a minority of rounds, which the median ignores (issue 26). 0 = no minimum time.
    min_rounds: int = 5
    tolerance: float = 0.05
    min_time_s: float = 0.25
    eval_batch_size: int = 256
    reference: str | None = None  # stage whose model is the baseline for ratios; None = first train stage
    # The chain's last stage is also timed against the baseline on each of these fp32 runtimes (RUNTIMES names),
    # for speedup_vs_best_fp32: what a deployer compares with. null = every fp32 runtime installed; [] = none.
    fp32_routes: list[str] | None = None

    def __post_init__(self) -> None:
        for key in ("threads", "batch_size", "iters", "rounds", "min_rounds", "eval_batch_size"):
            check(getattr(self, key) >= 1, f"{key}", getattr(self, key), ">= 1")
        # At least one untimed call: compilation, autotuning and lazy initialisation stay out of the samples.
        check(self.warmup >= 1, "warmup", self.warmup, ">= 1")
        check(0 <= self.tolerance < 1, "tolerance", self.tolerance, "in [0, 1): a relative half-width")
        check(0 <= self.min_time_s <= 60, "min_time_s", self.min_time_s, "in [0, 60] seconds")
        check(self.throughput_threads is None or self.throughput_threads >= 1, "throughput_threads",
              self.throughput_threads, "null or >= 1")


def _store_schemas() -> None:
    """Runtime and measure options are typed configs selected in the defaults list (``- runtime: default``),
    so Hydra checks their keys and types at the command line and the dataclasses stay the one source."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(group="runtime", name="default", node=RuntimeConfig)
    store.store(group="measure", name="default", node=MeasureConfig)


_store_schemas()


def to_dict(obj: Any) -> dict[str, Any]:
    """A plain dict of a dataclass or OmegaConf node (for hashing and records)."""
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, (DictConfig, ListConfig)):
        return OmegaConf.to_container(obj, resolve=True)  # type: ignore[return-value]
    return dict(obj)


def resolve_path(path: str | os.PathLike) -> Path:
    """Paths in the config are relative to where the user ran the command (we never chdir)."""
    return Path(os.path.expanduser(str(path))).resolve()


def check_weights_file(key: str, path: str) -> None:
    """Raise BadValue at ``key`` unless ``path`` holds a state_dict that reads weights-only (imports torch)."""
    from compressbench.infra.safe_load import CheckpointError, read_state_dict

    try:
        read_state_dict(resolve_path(path))
    except CheckpointError as e:
        raise BadValue(key, path, str(e)) from None


_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SLUG = "letters, digits, '.', '_', '-' (no '/', no leading '.')"  # what a name that becomes a folder may hold


def is_safe_slug(name: Any) -> bool:
    """Whether ``name`` is safe as one path component (see ``safe_slug``)."""
    return bool(_SLUG.fullmatch(str(name)))


def safe_slug(name: Any) -> str:
    """``name`` if it is safe as one path component (letters, digits, ``._-``, not starting with a dot);
    otherwise ValueError saying how to fix it."""
    text = str(name)
    if not is_safe_slug(text):
        raise ValueError(f"experiment name {text!r} is not a safe folder name (letters, digits, '.', '_', '-'; "
                         "no '/', no leading '.'); rename it with name=<slug> when you run it")
    return text


def register_resolvers() -> None:
    """``${cb_slug:${name}}``: the run and sweep dirs (conf/config.yaml) refuse a name that would leave them,
    before Hydra creates any folder."""
    OmegaConf.register_new_resolver("cb_slug", safe_slug, replace=True)
