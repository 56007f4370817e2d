"""A model written the way you would write your own: a plain nn.Module, no KD Explorer imports."""

from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """Two convolutions and a linear head for small images (8x8 grey digits by default)."""

    def __init__(self, num_classes: int = 10, width: int = 16, channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv2(self.conv1(x))).flatten(1))


class ShapesCNN(nn.Module):
    """Three strided convolutions and a linear head for small RGB images (the generated shapes folder)."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

        self.layer1, self.layer2, self.layer3 = block(3, width), block(width, 2 * width), block(2 * width, 4 * width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.layer3(self.layer2(self.layer1(x)))).flatten(1))
