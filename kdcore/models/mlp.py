"""Multi-layer perceptron: flattens any input, so it fits every dataset."""

from __future__ import annotations

import math
from itertools import pairwise

from torch import nn

from kdcore.models.base import BlockNet
from kdcore.registry import register_model


class MLP(BlockNet):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int) -> None:
        super().__init__()
        sizes = [math.prod(input_shape)] + [width] * depth
        self.stem = nn.Flatten(1)  # (B, D)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in pairwise(sizes)
        )
        self.neck = nn.Identity()  # the last hidden layer is the penultimate feature
        self.head = nn.Linear(width, num_classes)


@register_model("mlp", input_rank=None, family="mlp",
                sizes={"tiny": (16, 1), "small": (32, 2), "medium": (64, 2), "large": (256, 3)})
def mlp(input_shape: tuple[int, ...], num_classes: int, width: int = 64, depth: int = 2) -> MLP:
    """Fully connected ReLU network: `depth` hidden layers of `width` units; any input shape."""
    return MLP(input_shape, num_classes, width, depth)
