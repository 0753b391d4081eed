"""The README as a newcomer copies it: every compressbench command line composes and validates, every YAML
snippet of stage options is accepted by its stage kind, and the "Your own experiments" file works as written."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from compressbench.config import conf_dir
from compressbench.pipeline.plan import typed, validate
from compressbench.stages import STAGES

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^ *```(\w+)\n(.*?)^ *```", re.S | re.M)


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README.read_text()) if lang == language]


def commands() -> list[list[str]]:
    """The overrides of each ``python -m compressbench`` / ``compressbench`` line (flags and sweeps reduced:
    a comma list keeps its first value, ``-m`` and ``--cfg job`` go)."""
    found = []
    for body in blocks("bash"):
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:3] == ["python", "-m", "compressbench"]:
                args = words[3:]
            elif words[:1] == ["compressbench"] or words[:4] == ["torchrun", "--standalone"]:
                args = words[1:] if words[0] == "compressbench" else words[words.index("compressbench") + 1:]
            else:
                continue
            args = [a for a in args if a not in ("-m", "--cfg", "job")]
            found.append([first_value(a) for a in args])
    return found


def first_value(override: str) -> str:
    key, _, value = override.partition("=")
    if not value or value.startswith("["):
        return override
    return f"{key}={value.split(',')[0]}"


COMMANDS = commands()


def test_the_readme_has_commands_to_check():
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize("overrides", COMMANDS, ids=[" ".join(c) or "(none)" for c in COMMANDS])
def test_every_command_line_composes_and_validates(overrides: list[str], tmp_path: Path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher") if "hydra/launcher=slurm" in overrides else None
    base = [f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        full = compose("config", overrides=[*base, *overrides], return_hydra_config=True)
    cfg = OmegaConf.masked_copy(full, [k for k in full if k != "hydra"])
    if cfg.get("logger", {}).get("name") not in (None, "none"):
        pytest.importorskip(str(cfg.logger.name))
    validate(cfg)


def stage_snippets() -> list[tuple[str, dict]]:
    """Every YAML node in the README that names a stage kind (``stage: KIND``), by its name."""
    nodes = []
    for body in blocks("yaml"):
        parsed = OmegaConf.to_container(OmegaConf.create(body))
        if isinstance(parsed, dict):
            nodes += [(name, node) for name, node in parsed.items() if isinstance(node, dict) and "stage" in node]
    return nodes


SNIPPETS = stage_snippets()


def test_the_readme_has_stage_snippets():
    assert {node["stage"] for _, node in SNIPPETS} >= {"train", "prune", "quantize", "distill", "cluster",
                                                        "encode", "lowrank"}


@pytest.mark.parametrize("name, node", SNIPPETS, ids=[name for name, _ in SNIPPETS])
def test_every_stage_snippet_is_a_valid_config_of_its_kind(name: str, node: dict):
    typed(STAGES.get(node["stage"]).config, node, name)  # an unknown key or a bad value raises


def test_the_own_experiment_example_runs_as_written(tmp_path: Path):
    from clihelp import cli

    (example,) = [b for b in blocks("yaml") if "my_configs/experiment/my_resnet.yaml" in b]
    path = tmp_path / "my_configs" / "experiment" / "my_resnet.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(example)  # copied as written, comments included
    proc = cli(tmp_path, "--config-dir", "my_configs", "+experiment=my_resnet", "--cfg", "job")
    assert proc.returncode == 0, proc.stderr
    job = OmegaConf.create(proc.stdout)
    assert job.name == "my_resnet" and job.model.name == "resnet20" and job.train.epochs == 100


def test_the_own_model_notebook_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The "Bring your own model" Python example, executed as written (outputs and cache under the cwd)."""
    (example,) = [b for b in blocks("python") if "compressbench.run(model=" in b]
    import compressbench

    run = compressbench.run  # as written, timed briefly: timing is not what this checks (it doubles the time)
    monkeypatch.setattr(compressbench, "run", lambda *a, overrides=(), **k: run(
        *a, overrides=[*overrides, "measure.warmup=1", "measure.iters=3", "measure.rounds=2",
                                  "measure.fp32_routes=[eager]"], **k))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102  (our own README)
    df = namespace["df"]
    assert list(df["stage"]) == ["train", "prune", "quantize"] and (df["status"] == "ok").all()
    assert set(df["model"]) == {"MyNet"} and df["test_acc"].iloc[0] > 50  # 4 classes: chance is 25%
