"""1-d convolutional network for sequences shaped (C, L), e.g. MNIST-1D."""

from __future__ import annotations

import torch
from torch import nn

from kdcore.models.base import ModelOutput
from kdcore.registry import register_model


class CNN1d(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int) -> None:
        super().__init__()
        channels, _ = input_shape
        blocks = []
        for i in range(depth):
            # The first block keeps the resolution; later ones halve it, like a small ResNet stem.
            blocks.append(nn.Sequential(
                nn.Conv1d(channels if i == 0 else width, width, 5, stride=1 if i == 0 else 2, padding=2),
                nn.BatchNorm1d(width),
                nn.ReLU(),
            ))
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.AdaptiveAvgPool1d(4)  # keeps coarse position, which MNIST-1D labels depend on
        self.head = nn.Linear(width * 4, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = x  # (B, C, L)
        features: dict[str, torch.Tensor] = {}
        for i, block in enumerate(self.blocks, start=1):
            h = block(h)  # (B, width, L_i)
            features[f"block{i}"] = h
        z = self.pool(h).flatten(1)  # (B, width * 4)
        features["penultimate"] = z
        return ModelOutput(self.head(z), features)


@register_model("cnn1d", input_rank=2, family="cnn", spatial=True,
                sizes={"tiny": (8, 1), "small": (16, 2), "medium": (32, 3), "large": (64, 4)})
def cnn1d(input_shape: tuple[int, ...], num_classes: int, width: int = 32, depth: int = 3) -> CNN1d:
    """1-d CNN: `depth` conv-BN-ReLU blocks of `width` channels (kernel 5), for (C, L) sequences."""
    return CNN1d(input_shape, num_classes, width, depth)
