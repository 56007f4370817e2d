"""A user's own PyTorch modules, as a test imports them (``name: import``, ``path: tests.byo_models:...``)."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """A plain 2-d CNN on 8x8 digits, written without the project's model contract."""

    def __init__(self, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv2(self.conv1(x))).flatten(1))


class TupleOut(SmallCNN):
    """Returns (logits, extra), as many research codebases do."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = super().forward(x)
        return logits, logits.detach()


class DictOut(SmallCNN):
    """Returns a mapping with ``logits``."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": super().forward(x)}


def small_cnn(num_classes: int, width: int = 8) -> SmallCNN:
    return SmallCNN(num_classes, width)


def not_a_module(**_: object) -> str:
    return "no"


def broken(**_: object) -> nn.Module:
    raise RuntimeError("the factory itself fails")
