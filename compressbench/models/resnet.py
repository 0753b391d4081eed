"""ResNet-34 and ResNet-50 (He et al. 2016), torchvision's architectures with a small-image stem."""
from __future__ import annotations

from torch import nn

from compressbench.models._common import MODELS, SMALL_IMAGE, check_args, check_bool, stem_conv
from compressbench.models._pretrained import load_pretrained_


def imagenet_resnet(
    arch: str, weights: str, num_classes: int, in_channels: int, image_size: int, pretrained: bool
) -> nn.Module:
    """torchvision's ``arch`` (``weights``: the name of its weights enum); under 64x64 conv1 is 3x3 stride 1 and
    the stem max-pool an Identity.

    With the ImageNet stem a 32x32 image reaches layer1 as 8x8 and layer4 as 1x1; with the small stem it keeps
    32x32 → 4x4 (the usual CIFAR adaptation). A grayscale model gets a fresh 1-channel conv1.
    """
    import torchvision  # on first build: torchvision.models imports torch._dynamo (a second at start-up)

    check_args(num_classes, in_channels, image_size)
    pretrained = check_bool("pretrained", pretrained)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    small = image_size < SMALL_IMAGE
    if small or in_channels != 3:
        model.conv1 = stem_conv(in_channels, 64, small)
    if small:
        model.maxpool = nn.Identity()
    if pretrained:
        load_pretrained_(model, getattr(torchvision.models, weights).DEFAULT, arch)
    return model


@MODELS.register("resnet34")
def resnet34(num_classes: int, in_channels: int, image_size: int, pretrained: bool = False) -> nn.Module:
    """torchvision ResNet-34 (BasicBlocks 3-4-6-3); small-image stem under 64x64.

    Args:
        pretrained: start from torchvision's ``ResNet34_Weights.DEFAULT`` (all but fc, and conv1 when
            replaced).
    """
    return imagenet_resnet("resnet34", "ResNet34_Weights", num_classes, in_channels, image_size, pretrained)


@MODELS.register("resnet50")
def resnet50(num_classes: int, in_channels: int, image_size: int, pretrained: bool = False) -> nn.Module:
    """torchvision ResNet-50 (Bottlenecks 3-4-6-3); small-image stem under 64x64.

    Args:
        pretrained: start from torchvision's ``ResNet50_Weights.DEFAULT`` (IMAGENET1K_V2; all but fc, and
            conv1 when replaced).
    """
    return imagenet_resnet("resnet50", "ResNet50_Weights", num_classes, in_channels, image_size, pretrained)
