"""What every model file shares: the registry, checks of the builder arguments, and weight init."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

from compressbench.config import check
from compressbench.infra.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside, its own mode restored after: a probing forward (tracing, counting,
    hooks) must not move BatchNorm statistics or leave a training model in eval."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_args(num_classes: int, in_channels: int, image_size: int) -> None:
    """Raise a ValueError (``BadValue``) saying what is allowed for the arguments every builder takes."""
    check(_is_int(num_classes) and num_classes >= 2, "num_classes", num_classes,
          "an integer >= 2 (the dataset's number of classes)")
    check(_is_int(in_channels) and in_channels in (1, 3), "in_channels", in_channels,
          "1 (grayscale) or 3 (RGB)")
    check(_is_int(image_size) and image_size >= 8, "image_size", image_size,
          "an integer >= 8 (the side of the square input image in pixels)")


def check_bool(key: str, value: Any) -> bool:
    """A model option that must be true or false (a string such as ``"true"`` is a mistake, not truthy)."""
    check(isinstance(value, bool), f"model.{key}", value, "true or false")
    return value


def check_dropout(value: Any) -> float:
    check(isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1,
          "model.dropout", value, "a probability 0 <= p < 1")
    return float(value)


def init_weights(model: nn.Module, linear_std: float | None = None) -> None:
    """He init for convs (fan-out, as torchvision), BN as identity, optionally N(0, std) Linears.

    Linears keep PyTorch's default unless ``linear_std`` is given (torchvision's VGG uses 0.01).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


def stem_conv(in_channels: int, out_channels: int, small: bool) -> nn.Conv2d:
    """The first conv of an ImageNet network: 7x7 stride 2, or 3x3 stride 1 for small (CIFAR-sized) inputs.

    A 7x7/2 conv plus max-pool shrinks a 32x32 image to 8x8 before the first block; a 3x3/1 stem keeps 32x32.
    """
    conv = (nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, bias=False) if small
            else nn.Conv2d(in_channels, out_channels, 7, stride=2, padding=3, bias=False))
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


# Below this side the ImageNet stems (7x7/2 + max-pool, AlexNet's 11x11/4) would collapse the feature map.
SMALL_IMAGE = 64
