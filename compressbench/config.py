"""Config plumbing: where the YAML lives, the typed stage/runtime/measure configs, and ``validate(cfg)``.

Each stage kind declares a dataclass of its options next to its function (``stages/train.py``); registering the
stage stores that dataclass in Hydra's ConfigStore as ``stage/<kind>``, so the YAML says
``- stage@finetune: train`` and Hydra itself rejects typo'd keys and wrong types at the command line.
``validate`` then builds every typed config (running the range checks in ``__post_init__``) and checks the model
and dataset names — all before any data is loaded or any model trained.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


def conf_dir() -> Path:
    """The directory holding ``config.yaml``: inside the installed wheel, else the repository's ``conf/``."""
    here = Path(__file__).resolve().parent
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
    """Options every stage kind has, and the hooks the pipeline calls on every stage config.

    ``stage`` is the kind (the STAGES registry key). A kind overrides only the hooks it needs; the defaults
    describe a stage that keeps the architecture, reads no files and needs no checks beyond its own fields.
    """

    stage: str = ""
    # Layer names in later stages' configs refer to a changed model (low-rank renames layers; distill swaps
    # the model): the pre-flight layer-name check stops here.
    changes_layer_names: ClassVar[bool] = False
    # The stage's output is another architecture (distill's student): layer names of the incoming model are not
    # checked against it, nor later ones.
    replaces_model: ClassVar[bool] = False
    # A stage of this kind can be the baseline of ratios (``measure.reference`` defaults to the first one).
    reference_candidate: ClassVar[bool] = False

    def check_model(self, model: Any, node: str) -> None:
        """Check names this config gives against the built model (before any training); raise BadValue."""

    def check_plan(self, name: str, cfg: DictConfig, plan: Plan) -> None:
        """Checks that need the whole chain (run by ``validate``)."""

    def cache_salt(self) -> str | None:
        """What this stage reads beyond its config (a file's content), for its cache key; None = nothing."""
        return None

    def output_model(self, incoming: dict[str, Any], exact: bool) -> tuple[dict[str, Any], bool]:
        """The model config of this stage's output given the ``incoming`` one, and whether its layer names are
        still known exactly (``exact``: they were before; a stage that may rename or replace layers says False)."""
        return incoming, False

    def timing_routes(self) -> list[str]:
        """fp32 runtimes (RUNTIMES names) this stage's output is also timed against (``speedup_vs_best_fp32``)."""
        return []


@dataclass
class RuntimeConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms; slower on GPU
    threads: int | None = None  # intra-op threads for training; None = torch's default
    amp: str = "auto"  # auto (bf16/fp16 on CUDA, off on CPU) | bf16 | fp16 | off
    channels_last: str = "auto"  # auto (on CUDA) | true | false
    cache: bool = True  # reuse earlier stages from paths.cache_dir
    progress: bool = True  # tqdm bars

    def __post_init__(self) -> None:
        check(self.device == "auto" or self.device.split(":")[0] in {"cpu", "cuda", "mps"}, "device",
              self.device, "auto, cpu, cuda, cuda:N or mps")
        check(self.amp in {"auto", "bf16", "fp16", "off"}, "amp", self.amp, "auto, bf16, fp16 or off")
        check(str(self.channels_last).lower() in {"auto", "true", "false"}, "channels_last",
              self.channels_last, "auto, true or false")
        check(self.threads is None or self.threads >= 1, "threads", self.threads, "null or >= 1")


@dataclass
class MeasureConfig:
    latency: bool = True  # false skips timing (tests, quick looks); latency columns stay empty
    threads: int = 1  # intra-op threads for batch-1 latency (DESIGN.md §6: 1 thread is repeatable)
    batch_size: int = 32  # batch for throughput_ips
    throughput_threads: int | None = None  # None = all cores
    warmup: int = 5
    iters: int = 20  # timed calls per round
    rounds: int = 5  # interleaved reference/candidate rounds for the paired speedup
    eval_batch_size: int = 256
    reference: str | None = None  # stage whose model is the baseline for ratios; None = first train stage

    def __post_init__(self) -> None:
        for key in ("threads", "batch_size", "iters", "rounds", "eval_batch_size"):
            check(getattr(self, key) >= 1, f"{key}", getattr(self, key), ">= 1")
        # At least one untimed call: compilation, autotuning and lazy initialisation stay out of the samples.
        check(self.warmup >= 1, "warmup", self.warmup, ">= 1")
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


@dataclass
class Plan:
    """Everything ``validate`` checked, typed: what the runner walks."""

    name: str
    chain: list[str]
    stages: dict[str, StageConfig]
    runtime: RuntimeConfig
    measure: MeasureConfig
    reference: str | None
    analyses: dict[str, StageConfig] = field(default_factory=dict)  # name → config with an ``after`` stage


def typed(schema: type, node: Any, key: str) -> Any:
    """Merge ``node`` into the dataclass ``schema`` and instantiate it (runs its ``__post_init__`` checks)."""
    try:
        if isinstance(node, DictConfig):  # resolve ${...} against the whole config before detaching the node
            node = OmegaConf.to_container(node, resolve=True)
        merged = OmegaConf.merge(OmegaConf.structured(schema), node if node is not None else {})
        return OmegaConf.to_object(merged)
    except BadValue as e:
        raise e.under(key) from None
    except ConfigError:
        raise
    except OmegaConfBaseException as e:
        raise ConfigError(f"{key}: {e.msg if hasattr(e, 'msg') else e}") from None
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None


def validate(cfg: DictConfig) -> Plan:
    """Check the whole config before any work; raise ConfigError (or UnknownNameError) with what to do."""
    from compressbench.data import DATASETS
    from compressbench.models import check_model_config
    from compressbench.stages import STAGES

    check_model_config(cfg.model)
    DATASETS.get(cfg.dataset.name)
    chain = cfg.get("chain")
    check(isinstance(chain, (list, ListConfig)) and len(chain) > 0, "chain", chain,
          "a non-empty list of stage names, e.g. [train, finetune]")
    stages: dict[str, StageConfig] = {}
    defined = [k for k, v in cfg.items() if isinstance(v, (dict, DictConfig)) and "stage" in v]
    for name in chain:
        node = cfg.get(name)
        close = difflib.get_close_matches(str(name), defined, n=1)
        check(isinstance(node, (dict, DictConfig)) and "stage" in node, f"chain[{name}]", name,
              (f"did you mean '{close[0]}'? " if close else "") +
              f"Each name in chain needs a config node with a 'stage' kind, e.g. '{name}: {{stage: train}}' "
              f"(or '- stage@{name}: train' in the defaults); stage nodes defined: {', '.join(defined)}; "
              f"stage kinds: {', '.join(STAGES.names())}")
        spec = STAGES.get(node.stage)
        stages[name] = typed(spec.config, node, name)
    init_from = cfg.get("init_from")
    check(not init_from or resolve_path(init_from).is_file(), "init_from", init_from,
          "the path of a state_dict file (torch.save(model.state_dict(), path)), or null for random init")
    runtime = typed(RuntimeConfig, cfg.get("runtime"), "runtime")
    measure = typed(MeasureConfig, cfg.get("measure"), "measure")
    reference = measure.reference
    if reference is None:
        reference = next((n for n in chain if stages[n].reference_candidate), None)
    check(reference is None or reference in stages, "measure.reference", reference,
          f"one of the chain's stages: {', '.join(chain)}")
    analyses: dict[str, StageConfig] = {}
    for name in cfg.get("analyses") or []:
        node = cfg.get(name)
        check(isinstance(node, (dict, DictConfig)) and "stage" in node, f"analyses[{name}]", name,
              "each analysis needs a config node with a 'stage' kind (e.g. +analysis=sensitivity adds one)")
        analysis = typed(STAGES.get(node.stage).config, node, name)
        after = getattr(analysis, "after", None) or reference
        check(after in stages, f"{name}.after", after, f"one of the chain's stages: {', '.join(chain)}")
        analysis.after = after  # type: ignore[attr-defined]
        analyses[name] = analysis
    plan = Plan(name=str(cfg.get("name", "default")), chain=list(chain), stages=stages, runtime=runtime,
                measure=measure, reference=reference, analyses=analyses)
    for name, scfg in plan.stages.items():  # checks that need the whole chain (e.g. a distill teacher's stage)
        scfg.check_plan(name, cfg, plan)
    return plan


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
