"""A small CNN for distillation students: three conv-BN-ReLU blocks, global average pool, one linear layer."""
from __future__ import annotations

import torch
from torch import nn

from compressbench.config import check
from compressbench.models._common import MODELS, _is_int, check_args, init_weights


def _block(in_channels: int, out_channels: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                               nn.BatchNorm2d(out_channels), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """block1 (w) → max-pool → block2 (2w) → max-pool → block3 (4w) → global avg-pool → fc.

    The named blocks give distillation hint/attention layers that line up with the three stages of the CIFAR
    ResNets (``layer1``..``layer3``). An 8x8 image leaves a 2x2 map for block3; global pooling makes the head
    independent of the image size.
    """

    def __init__(self, num_classes: int, in_channels: int, width: int) -> None:
        super().__init__()
        self.block1 = _block(in_channels, width, pool=True)
        self.block2 = _block(width, 2 * width, pool=True)
        self.block3 = _block(2 * width, 4 * width, pool=False)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@MODELS.register("small_cnn")
def small_cnn(num_classes: int, in_channels: int, image_size: int, width: int = 16) -> nn.Module:
    """Small CNN student; 24,346 parameters at width 16 on 32x32x3 with 10 classes (any image size >= 8).

    Args:
        width: channels of block1 (block2 has 2x, block3 4x).
    """
    check_args(num_classes, in_channels, image_size)
    check(_is_int(width) and width >= 1, "model.width", width, "an integer >= 1 (channels of the first block)")
    return SmallCNN(num_classes, in_channels, width)
