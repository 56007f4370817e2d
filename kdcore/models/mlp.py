"""Multi-layer perceptron: flattens any input, so it fits every dataset."""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn

from kdcore.models.base import ModelOutput
from kdcore.registry import register_model


class MLP(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int) -> None:
        super().__init__()
        sizes = [math.prod(input_shape)] + [width] * depth
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in pairwise(sizes)
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = x.flatten(1)  # (B, D)
        features: dict[str, torch.Tensor] = {}
        for i, block in enumerate(self.blocks, start=1):
            h = block(h)  # (B, width)
            features[f"block{i}"] = h
        features["penultimate"] = h
        return ModelOutput(self.head(h), features)


@register_model("mlp", input_rank=None, family="mlp",
                sizes={"tiny": (16, 1), "small": (32, 2), "medium": (64, 2), "large": (256, 3)})
def mlp(input_shape: tuple[int, ...], num_classes: int, width: int = 64, depth: int = 2) -> MLP:
    """Fully connected ReLU network: `depth` hidden layers of `width` units; any input shape."""
    return MLP(input_shape, num_classes, width, depth)
