"""Models from outside the zoo, from config: ``model=torchvision`` by name and ``model=callable`` (any importable
builder). Built for the dataset's shape, checked before any work in one line, named in the rows, and keyed by
what they are: the builder's arguments and source file, a weights file; the zoo's keys are untouched."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from compressbench.config import ConfigError, conf_dir
from compressbench.models import MODELS, build_model, check_model_config, model_identity, model_label
from compressbench.pipeline.keys import chain_keys
from compressbench.pipeline.plan import EXPERIMENTS, validate

NETS = '''
from torch import nn


def build(num_classes, in_channels=3, width=4):
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(width, num_classes))


class Net(nn.Module):
    def __init__(self, num_classes, image_size, hidden=8):
        super().__init__()
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(image_size * image_size, hidden), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.fc(x)
'''


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``my_nets.py`` importable, as from the folder a user runs in."""
    path = tmp_path / "my_nets.py"
    path.write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_nets", None)
    yield path
    sys.modules.pop("my_nets", None)


def test_torchvision_by_name_is_built_for_the_dataset(make_cfg) -> None:
    cfg = make_cfg("model=torchvision", "model.arch=mobilenet_v3_small", "model.args={width_mult:0.25}")
    model = build_model(cfg.model, 7, 1, 32)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 7)  # 7 classes, a 1-channel first conv
    assert model.features[0][0].in_channels == 1
    assert model_label(cfg.model) == "mobilenet_v3_small"


def test_callable_gets_the_shape_its_signature_names(user_package: Path) -> None:
    conv = build_model({"name": "callable", "target": "my_nets.build", "args": {"width": 6}}, 5, 1, 8)
    assert conv(torch.zeros(2, 1, 8, 8)).shape == (2, 5) and conv[0].out_channels == 6
    mlp = build_model({"name": "callable", "target": "my_nets.Net"}, 3, 1, 12)  # a class: its __init__ says
    assert mlp(torch.zeros(2, 1, 12, 12)).shape == (2, 3)
    # torchvision's builders take **kwargs: num_classes goes through them
    tv = build_model({"name": "callable", "target": "torchvision.models.shufflenet_v2_x0_5"}, 4, 3, 32)
    assert tv(torch.zeros(2, 3, 32, 32)).shape == (2, 4)
    assert model_label({"name": "callable", "target": "my_nets.Net"}) == "Net"


@pytest.mark.parametrize("overrides, match", [
    (["model=callable", "model.target=no_such_pkg.nets.build"], r"model.target=no_such_pkg.nets.build: cannot import"),
    (["model=callable", "model.target=torchvision.models.no_such_net"], r"has no 'no_such_net'"),
    (["model=callable"], r"model=callable needs model.target"),
    (["model=callable", "model.target=torchvision.models.resnet18", "model.args={widht:2}"],
     r"model.args: .*unexpected keyword argument 'widht'"),
    (["model=torchvision", "model.arch=mobilenet_v3_smal"], r"did you mean mobilenet_v3_small"),
    (["model=torchvision", "model.arch=resnet18", "model.pretrained=IMAGENET"], r"model.pretrained='IMAGENET'"),
    (["model=torchvision", "model.arch=resnet18", "+model.widht=2"], r"model 'torchvision' has no option 'widht'"),
])
def test_a_bad_node_is_one_line_before_any_work(make_cfg, overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        validate(make_cfg(*overrides))
    assert "\n" not in str(e.value)


def test_pretrained_weights_from_a_file_and_from_the_hub_cache(tmp_path: Path, monkeypatch) -> None:
    import torchvision

    donor = torchvision.models.shufflenet_v2_x0_5(num_classes=1000)  # as an ImageNet checkpoint: another head
    file = tmp_path / "mine.pt"
    torch.save(donor.state_dict(), file)
    node = {"name": "torchvision", "arch": "shufflenet_v2_x0_5", "pretrained": str(file)}
    model = build_model(node, 4, 3, 32)
    assert torch.equal(model.conv1[0].weight, donor.conv1[0].weight) and model.fc.out_features == 4
    assert model_identity(node)["weights_sha256"]  # the file's content is keyed, not its path
    # true: torchvision's default weights, found in $TORCH_HOME/hub/checkpoints (nothing is downloaded)
    from compressbench.models._pretrained import checkpoint_path

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    weights = torchvision.models.get_model_weights("shufflenet_v2_x0_5").DEFAULT
    checkpoint_path(weights).parent.mkdir(parents=True)
    torch.save(donor.state_dict(), checkpoint_path(weights))
    hub = build_model({**node, "pretrained": True}, 4, 1, 32)
    assert torch.allclose(hub.conv1[0].weight, donor.conv1[0].weight.sum(1, keepdim=True))  # grey = R+G+B


def test_keys_hold_the_builder_its_arguments_and_its_source_file(make_cfg, user_package: Path) -> None:
    def first_key(*overrides: str) -> str:
        cfg = make_cfg("model=callable", "model.target=my_nets.build", *overrides)
        return chain_keys(validate(cfg), "data", EXPERIMENTS)[0]

    before = first_key()
    assert first_key() == before
    assert first_key("model.args={width:8}") != before
    user_package.write_text(NETS.replace("nn.ReLU()", "nn.GELU()"))  # an edited model file recomputes
    assert first_key() != before


def test_a_callable_distill_student_is_keyed_by_its_source_file(make_cfg, user_package: Path) -> None:
    def keys() -> list[str]:
        cfg = make_cfg("+stage@kd=distill", "chain=[train,kd]", "kd.student=callable",
                       "+kd.student_options={target:my_nets.build}")
        return chain_keys(validate(cfg), "data", EXPERIMENTS)

    before = keys()
    user_package.write_text(NETS.replace("nn.ReLU()", "nn.GELU()"))
    after = keys()
    assert after[1] == before[1] and after[2] != before[2]  # the teacher's training is untouched


@pytest.mark.parametrize("name", MODELS.names())
def test_zoo_keys_are_their_config_node_unchanged(name: str) -> None:
    node = OmegaConf.load(conf_dir() / "model" / f"{name}.yaml")
    assert model_identity(node) == OmegaConf.to_container(node)
    assert model_label(node) == name


def test_unknown_model_lists_the_outside_sources_too() -> None:
    from compressbench.infra.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match="callable.*torchvision"):
        check_model_config({"name": "mobilenet_v3_small"})
    assert isinstance(build_model({"name": "lenet5"}, 10, 1, 8), nn.Module)
