"""The CIFAR ResNets of He et al. 2016 (§4.2): depth 6n+2, three stages of 16/32/64 channels, BasicBlocks.

Where a block changes shape, the shortcut is a 1x1 conv + BN projection (the paper's option B) rather than
the zero-padding lambda (option A) of most CIFAR code: a lambda is opaque to torch-pruning's dependency graph
and to FX quantization, while a conv is pruned and quantized like any other layer. Option B costs 2,752
parameters over the paper's counts, at every depth.
"""
from __future__ import annotations

import torch
from torch import nn

from compressbench.models._common import MODELS, check_args, init_weights

DEPTHS = (8, 20, 32, 44, 56, 110)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut; ``downsample`` (option B) is None when the shape is kept."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        # Separate ReLU modules (not in-place): fusion and feature hooks (distillation) see distinct outputs.
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class CifarResNet(nn.Module):
    """conv3x3(16) → 3 stages of n BasicBlocks (16, 32/2, 64/2) → global avg-pool → fc.

    Module names follow torchvision's ResNet (conv1, bn1, layer1..3, fc) so tools that name layers (e.g. "keep
    fc unpruned") treat both families alike.
    """

    def __init__(self, depth: int, num_classes: int, in_channels: int) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth={depth} is not allowed: 6n+2 with n >= 1 (8, 14, 20, ...)")
        n = (depth - 2) // 6
        self.conv1 = conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = self._stage(16, 16, n, stride=1)
        self.layer2 = self._stage(16, 32, n, stride=2)
        self.layer3 = self._stage(32, 64, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        init_weights(self)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_planes, planes, stride)]
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.avgpool(x)
        return self.fc(torch.flatten(x, 1))


def _register(depth: int) -> None:
    def build(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        check_args(num_classes, in_channels, image_size)
        return CifarResNet(depth, num_classes, in_channels)

    build.__name__ = build.__qualname__ = f"resnet{depth}"
    build.__doc__ = f"CIFAR ResNet-{depth} (He et al. 2016), option-B shortcuts; any image size >= 8."
    MODELS.register(f"resnet{depth}")(build)


for _depth in DEPTHS:
    _register(_depth)
