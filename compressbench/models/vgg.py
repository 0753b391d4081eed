"""VGG-16 with batch norm (Simonyan & Zisserman 2015; BN as in torchvision's ``vgg16_bn``)."""
from __future__ import annotations

import torch
from torch import nn

from compressbench.models._common import MODELS, check_args, check_bool, check_dropout, init_weights
from compressbench.models._pretrained import load_pretrained_

# Configuration "D": conv widths, "M" = 2x2 max-pool.
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
# From this side up all five pools apply and torchvision's 7x7x512 → 4096 → 4096 classifier is used.
IMAGENET_HEAD_FROM = 128


class VGG16BN(nn.Module):
    """VGG-16-BN. Names and layer indices match torchvision's ``vgg16_bn`` so ImageNet weights load by name.

    A max-pool that would shrink the map below 1x1 (e.g. the 4th and 5th on 8x8 inputs) is an Identity, which
    keeps the indices. Under 128x128 the head is the CIFAR one: global avg-pool → 512 → 512 → classes.
    """

    def __init__(self, num_classes: int, in_channels: int, image_size: int, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size, channels = image_size, in_channels
        for v in VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2) if size >= 2 else nn.Identity())
                size = size // 2 if size >= 2 else size
            else:
                layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.BatchNorm2d(int(v)), nn.ReLU()]
                channels = int(v)
        self.features = nn.Sequential(*layers)
        if image_size >= IMAGENET_HEAD_FROM:
            self.avgpool = nn.AdaptiveAvgPool2d(7)
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(4096, 4096),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(4096, num_classes),
            )
        else:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(
                nn.Linear(512, 512), nn.ReLU(), nn.Dropout(dropout), nn.Linear(512, num_classes)
            )
        init_weights(self, linear_std=0.01)  # torchvision's VGG init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@MODELS.register("vgg16")
def vgg16(
    num_classes: int, in_channels: int, image_size: int, pretrained: bool = False, dropout: float = 0.5
) -> nn.Module:
    """VGG-16 with BN; CIFAR head under 128x128, torchvision's ImageNet head from 128x128 up.

    Args:
        pretrained: start from torchvision's ``VGG16_BN_Weights`` (the features load at every image size; the
            classifier only with the ImageNet head, all but its last layer).
        dropout: dropout probability in the classifier.
    """
    check_args(num_classes, in_channels, image_size)
    pretrained, dropout = check_bool("pretrained", pretrained), check_dropout(dropout)
    model = VGG16BN(num_classes, in_channels, image_size, dropout)
    if pretrained:
        import torchvision  # only for the weights: torchvision.models imports torch._dynamo

        load_pretrained_(model, torchvision.models.VGG16_BN_Weights.DEFAULT, "vgg16")
    return model
