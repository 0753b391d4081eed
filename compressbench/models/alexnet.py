"""AlexNet (Krizhevsky et al. 2012): torchvision's layout from 64x64 up, a CIFAR-style variant below."""
from __future__ import annotations

import torch
from torch import nn

from compressbench.models._common import (
    MODELS,
    SMALL_IMAGE,
    check_args,
    check_bool,
    check_dropout,
    init_weights,
)
from compressbench.models._pretrained import load_pretrained_


class CifarAlexNet(nn.Module):
    """AlexNet's five convs (64/192/384/256/256 channels) as 3x3 stride-1 layers, for images under 64x64.

    A 2x2 max-pool follows conv1, conv2 and conv5 (AlexNet's places) only while the map is at least 2x2; a
    skipped pool is an Identity so the layer indices, and with them the names of pretrained tensors, match
    torchvision's. The map is then averaged to at most 2x2 and classified by 256*k*k → 1024 → 1024 →
    classes, with dropout.
    """

    def __init__(self, num_classes: int, in_channels: int, image_size: int, dropout: float = 0.5) -> None:
        super().__init__()
        size = image_size
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate([(in_channels, 64), (64, 192), (192, 384), (384, 256), (256, 256)]):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
            if i in (0, 1, 4):
                if size >= 2:
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
                else:
                    layers.append(nn.Identity())
        self.features = nn.Sequential(*layers)
        side = min(2, size)
        self.avgpool = nn.AdaptiveAvgPool2d(side)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * side * side, 1024),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(1024, 1024),
            nn.ReLU(),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@MODELS.register("alexnet")
def alexnet(
    num_classes: int, in_channels: int, image_size: int, pretrained: bool = False, dropout: float = 0.5
) -> nn.Module:
    """AlexNet. From 64x64 up: torchvision's ``AlexNet`` (11x11/4 stem; ImageNet weights load fully but for
    the classifier's last layer, and conv1 when grayscale). Under 64x64: ``CifarAlexNet``, where pretrained
    weights load only into the layers whose shapes agree (conv3..conv5).

    Args:
        pretrained: start from torchvision's ImageNet weights (downloaded once into torch.hub's cache).
        dropout: dropout probability in the classifier.
    """
    import torchvision  # on first build: torchvision.models imports torch._dynamo (a second at start-up)

    check_args(num_classes, in_channels, image_size)
    pretrained, dropout = check_bool("pretrained", pretrained), check_dropout(dropout)
    model: nn.Module
    if image_size >= SMALL_IMAGE:
        model = torchvision.models.AlexNet(num_classes=num_classes, dropout=dropout)
        if in_channels != 3:
            model.features[0] = nn.Conv2d(in_channels, 64, 11, stride=4, padding=2)
    else:
        model = CifarAlexNet(num_classes, in_channels, image_size, dropout)
    init_weights(model)  # torchvision's AlexNet keeps PyTorch's default; He init for convs in both variants
    if pretrained:
        load_pretrained_(model, torchvision.models.AlexNet_Weights.DEFAULT, "alexnet")
    return model
