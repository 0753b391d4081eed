"""The ``logger`` node: every tracker composes and validates; bad values, unknown keys and a missing package
fail in validate before any work, saying what to do; and importing compressbench loads no tracker library."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from compressbench.config import ConfigError, conf_dir
from compressbench.pipeline.plan import validate
from compressbench.pipeline.runner import run
from compressbench.tracking import TRACKERS, check_logger


@pytest.mark.parametrize("name", TRACKERS.names())
def test_every_tracker_composes_validates_and_documents_its_keys(name, tracking_cfg):
    tracker = TRACKERS.get(name)
    if not tracker.available():
        pytest.skip(tracker.install_hint)
    cfg = tracking_cfg(f"logger={name}")
    validate(cfg)
    options = check_logger(cfg.logger)
    assert isinstance(options, tracker.options) and options.name == name
    yaml_keys = set(OmegaConf.load(conf_dir() / "logger" / f"{name}.yaml"))
    assert yaml_keys == {f.name for f in dataclasses.fields(tracker.options)}  # every option documented there


@pytest.mark.parametrize(("overrides", "says"), [
    (["logger=mlflow", "logger.stage_files=some"], ["logger.stage_files='some'", "export", "all"]),
    (["logger=mlflow", "+logger.trackinguri=x"], ["trackinguri", "tracking_uri", "conf/logger/mlflow.yaml"]),
    (["logger=tensorboard", "logger.plots=maybe"], ["plots", "log_dir"]),
    (["logger.name=mlfow"], ["logger.name='mlfow'", "mlflow, none, tensorboard"]),
])
def test_a_bad_logger_fails_before_any_work(overrides, says, tracking_cfg, tmp_path):
    cfg = tracking_cfg(*overrides)
    with pytest.raises(ConfigError) as info:
        run(cfg, tmp_path / "run")
    for text in says:
        assert text in str(info.value)
    assert not (tmp_path / "run").exists()  # no folder, data or compute before the check


def test_a_missing_package_says_how_to_install_it(tracking_cfg, monkeypatch):
    missing = dataclasses.replace(TRACKERS.get("mlflow"), available=lambda: False)
    monkeypatch.setitem(TRACKERS._entries, "mlflow", missing)
    with pytest.raises(ConfigError, match=r'pip install "compressbench\[mlflow\]"'):
        validate(tracking_cfg("logger=mlflow"))


def test_importing_compressbench_loads_no_tracker_library():
    code = ("import sys, compressbench, compressbench.pipeline.runner, compressbench.tracking; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'tensorboard')"
            " or m.startswith('torch.utils.tensorboard')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
