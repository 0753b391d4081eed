"""One default per option: the stage dataclasses are the source, and the YAML does not quietly disagree.

``conf/config.yaml`` once set ``prune.scope: global`` (chosen for magnitude) over the dataclass's ``layer``, so
``prune.method=l1_filter`` silently ranked filters globally. The rules checked here:
  - composing a stage kind on its own gives exactly its dataclass defaults (no YAML file shadows them);
  - a base stage node (``conf/config.yaml``, ``conf/analysis/*.yaml``) never sets an option whose default the
    dataclass resolves per method (``None`` → the method's choice), and restates any other default with a
    different value only where ``RESTATED`` says why;
  - each prune method, chosen on the command line, gets the scope its papers use.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from omegaconf import OmegaConf

from compressbench.config import conf_dir
from compressbench.pipeline.plan import validate
from compressbench.stages import STAGES

# (node, key) → why the base config restates this default with another value. Each entry must be in use.
RESTATED = {
    ("train", "epochs"): "the default run is sized for about a minute on a laptop CPU: LeNet-5 on the digits",
    ("train", "batch_size"): "the default run: 1,437 digits training images, small batches",
    ("train", "lr"): "the default run: a small model on small batches",
    ("finetune", "batch_size"): "finetune: as the default run's train",
    ("finetune", "lr"): "finetune: a fifth of the default run's train lr (gentler, DESIGN.md §3)",
    ("prune", "amount"): "the default run's point: 80% of the weights (Han et al.'s LeNets keep 8-12%)",
}
# What each prune method's papers do with one amount (stages/prune.py says why).
PAPER_SCOPES = {"magnitude": "global", "random": "global", "l1_filter": "layer", "taylor": "global"}


def flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested options as dotted keys (``retrain.epochs``)."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for k, v in node.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def class_defaults(schema: type) -> dict[str, Any]:
    """The dataclass's declared defaults, before ``__post_init__`` resolves any."""
    return flat(OmegaConf.to_container(OmegaConf.structured(schema)))


def resolved_per_method(schema: type) -> set[str]:
    """Options declared ``None`` that ``__post_init__`` fills in (from the method, the unit, ...)."""
    declared, built = class_defaults(schema), flat(dataclasses.asdict(schema()))
    return {k for k, v in declared.items() if v is None and built.get(k) is not None}


def base_stage_nodes() -> list[tuple[str, str, dict[str, Any]]]:
    """(node name, stage kind, the keys the YAML file itself sets) for every stage node of the base configs."""
    out = []
    files = [conf_dir() / "config.yaml", *sorted((conf_dir() / "analysis").glob("*.yaml"))]
    for path in files:
        raw = OmegaConf.to_container(OmegaConf.load(path))
        for default in raw.get("defaults", []):  # "- stage@finetune: train" names the node's kind
            if isinstance(default, dict):
                for group, kind in default.items():
                    if group.lstrip("/").startswith("stage@"):
                        name = group.split("@", 1)[1]
                        out.append((name, kind, raw.get(name) or {}))
    return out


@pytest.mark.parametrize("kind", STAGES.names())
def test_a_stage_kind_composes_to_its_dataclass_defaults(make_cfg, kind: str):
    cfg = make_cfg(f"+stage@probe={kind}", fast=False)
    assert flat(OmegaConf.to_container(cfg.probe)) == class_defaults(STAGES.get(kind).config)


def test_base_configs_restate_no_default_differently():
    nodes = base_stage_nodes()
    assert {"train", "prune", "finetune", "quantize", "sensitivity"} <= {n for n, _, _ in nodes}
    used, problems = set(), []
    for name, kind, node in nodes:
        schema = STAGES.get(kind).config
        defaults, per_method = class_defaults(schema), resolved_per_method(schema)
        for key, value in flat(node).items():
            if key in per_method:
                problems.append(f"{name}.{key}: its default depends on the method (null in {schema.__name__}); "
                                "setting it in a base config makes every method inherit one method's choice")
            elif key != "stage" and value != defaults.get(key):
                if (name, key) in RESTATED:
                    used.add((name, key))
                else:
                    problems.append(f"{name}.{key}={value!r} but {schema.__name__} says {defaults.get(key)!r}: "
                                    "change the dataclass default, or say why in RESTATED")
    assert not problems, "\n".join(problems)
    assert used == set(RESTATED), f"RESTATED entries no longer needed: {set(RESTATED) - used}"


def test_prune_scope_is_resolved_per_method():
    assert "scope" in resolved_per_method(STAGES.get("prune").config)  # so the base config may not set it


@pytest.mark.parametrize("method", PAPER_SCOPES)
def test_each_prune_method_gets_its_papers_scope(make_cfg, method: str):
    amount = "prune.amount=0.5"  # a valid amount of weights and of channels alike
    prune = validate(make_cfg(f"prune.method={method}", amount, fast=False)).stages["prune"]
    assert prune.scope == PAPER_SCOPES[method]
    other = "layer" if PAPER_SCOPES[method] == "global" else "global"
    chosen = validate(make_cfg(f"prune.method={method}", amount, f"prune.scope={other}", fast=False))
    assert chosen.stages["prune"].scope == other  # an explicit choice still wins
