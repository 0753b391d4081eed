"""LeNet-5 and LeNet-300-100 (LeCun et al. 1998), the small models of the pruning papers (Han et al. 2015), and
the larger Caffe LeNet-5 that Han et al. actually pruned and compressed."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from compressbench.config import check
from compressbench.models._common import MODELS, check_args, init_weights


def _conv_pool_out(size: int, padding: int) -> int:
    """Side of the map after a 5x5 conv with ``padding`` and a 2x2 max-pool."""
    return (size + 2 * padding - 4) // 2


class LeNet5(nn.Module):
    """conv5x5(6) → max-pool → conv5x5(16) → max-pool → fc120 → fc84 → fc(classes), ReLU.

    Classic (unpadded) from 32x32 up. Below 32 the first conv is padded by 2, as is usual on 28x28 MNIST (the
    paper padded MNIST to 32x32); the second conv is padded too when unpadded its pooled map would be under
    2x2, e.g. on 8x8 digits: 8 → 4 → 2. The flatten size follows from the image size.
    """

    def __init__(self, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        pad1 = 0 if image_size >= 32 else 2
        size = _conv_pool_out(image_size, pad1)
        pad2 = 0 if _conv_pool_out(size, 0) >= 2 else 2
        size = _conv_pool_out(size, pad2)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=pad2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * size * size, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


class CaffeLeNet5(nn.Module):
    """Caffe's LeNet (``examples/mnist/lenet.prototxt``), the "LeNet-5" of Han et al. 2015/2016: conv5x5(20) →
    max-pool → conv5x5(50) → max-pool → fc500 → ReLU → fc(classes). 431,080 parameters on 28x28x1 with 10
    classes (LeCun's LeNet-5 has 61,706), 93% of them in fc500.

    As in Caffe there is no nonlinearity after the convs, only after fc500. The convs are unpadded from 28x28 up
    (Caffe's MNIST); on smaller images the first is padded by 2, and the second too when unpadded its pooled map
    would be under 2x2 (8x8 digits: 8 → 4 → 2), as in ``LeNet5``.
    """

    def __init__(self, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        pad1 = 0 if image_size >= 28 else 2
        size = _conv_pool_out(image_size, pad1)
        pad2 = 0 if _conv_pool_out(size, 0) >= 2 else 2
        size = _conv_pool_out(size, pad2)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 20, 5, padding=pad1),
            nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5, padding=pad2),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(50 * size * size, 500),
            nn.ReLU(),
            nn.Linear(500, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


class LeNet300100(nn.Module):
    """Flatten → fc300 → fc100 → fc(classes), ReLU: the fully connected LeNet of the pruning papers."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.classifier = nn.Sequential(
            nn.Linear(in_channels * image_size * image_size, 300),
            nn.ReLU(),
            nn.Linear(300, 100),
            nn.ReLU(),
            nn.Linear(100, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(x, 1))


class MLP(nn.Module):
    """Flatten → (fc → ReLU → dropout) per hidden layer → fc(classes): Hinton et al.'s MNIST teacher is 1200-1200."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, hidden: Sequence[int],
                 dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels * image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.classifier = nn.Sequential(*layers, nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(x, 1))


@MODELS.register("lenet5")
def lenet5(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """LeNet-5; 61,706 parameters on 32x32x1 with 10 classes."""
    check_args(num_classes, in_channels, image_size)
    return LeNet5(num_classes, in_channels, image_size)


@MODELS.register("lenet5_caffe")
def lenet5_caffe(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """Caffe's LeNet-5 (Han et al.'s); 431,080 parameters on 28x28x1 with 10 classes."""
    check_args(num_classes, in_channels, image_size)
    return CaffeLeNet5(num_classes, in_channels, image_size)


@MODELS.register("lenet300_100")
def lenet300_100(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """LeNet-300-100; 266,610 parameters on 28x28x1 with 10 classes."""
    check_args(num_classes, in_channels, image_size)
    return LeNet300100(num_classes, in_channels, image_size)


@MODELS.register("mlp")
def mlp(num_classes: int, in_channels: int, image_size: int, hidden: Sequence[int] = (1200, 1200),
        dropout: float = 0.5) -> nn.Module:
    """A fully connected net with ``hidden`` widths (default Hinton et al. 2015's 1200-1200 MNIST teacher)."""
    check_args(num_classes, in_channels, image_size)
    hidden = list(hidden)
    check(len(hidden) >= 1 and all(isinstance(h, int) and h >= 1 for h in hidden), "model.hidden", hidden,
          "a non-empty list of layer widths >= 1, e.g. [1200, 1200]")
    check(0 <= dropout < 1, "model.dropout", dropout, "0 <= dropout < 1")
    return MLP(num_classes, in_channels, image_size, hidden, dropout)
