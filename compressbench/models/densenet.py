"""DenseNet-121 (Huang et al. 2017), torchvision's architecture with a small-image stem."""
from __future__ import annotations

import re

from torch import nn

from compressbench.models._common import MODELS, SMALL_IMAGE, check_args, check_bool, stem_conv
from compressbench.models._pretrained import StateDict, load_pretrained_

# torchvision's DenseNet checkpoints predate its module names: "denselayer1.norm.1.weight" is now
# "denselayer1.norm1.weight" (torchvision.models.densenet._load_state_dict does the same rename).
_OLD_NAME = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def rename_old_keys(state: StateDict) -> StateDict:
    """Map the old checkpoint names to the current ones; current names pass through unchanged."""
    renamed = {}
    for key, value in state.items():
        m = _OLD_NAME.match(key)
        renamed[m.group(1) + m.group(2) if m else key] = value
    return renamed


@MODELS.register("densenet121")
def densenet121(num_classes: int, in_channels: int, image_size: int, pretrained: bool = False) -> nn.Module:
    """torchvision DenseNet-121 (growth 32, blocks 6-12-24-16).

    Under 64x64 ``features.conv0`` is a 3x3 stride-1 conv and ``features.pool0`` an Identity, so a 32x32 image
    enters the first dense block at 32x32 (not 8x8) and the last at 4x4.

    Args:
        pretrained: start from torchvision's ``DenseNet121_Weights.DEFAULT`` (all but the classifier, and
            conv0 when replaced).
    """
    import torchvision  # on first build: torchvision.models imports torch._dynamo (a second at start-up)

    check_args(num_classes, in_channels, image_size)
    pretrained = check_bool("pretrained", pretrained)
    model = torchvision.models.densenet121(weights=None, num_classes=num_classes)
    small = image_size < SMALL_IMAGE
    if small or in_channels != 3:
        model.features.conv0 = stem_conv(in_channels, 64, small)
    if small:
        model.features.pool0 = nn.Identity()
    if pretrained:
        weights = torchvision.models.DenseNet121_Weights.DEFAULT
        load_pretrained_(model, weights, "densenet121", rename_old_keys)
    return model
