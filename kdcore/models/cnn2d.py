"""2-d convolutional network for images shaped (C, H, W)."""

from __future__ import annotations

from torch import nn

from kdcore.models.base import BlockNet
from kdcore.registry import register_model


class CNN2d(BlockNet):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int) -> None:
        super().__init__()
        channels, height, width_px = input_shape
        self.stem = nn.Identity()  # (B, C, H, W)
        blocks = []
        size = min(height, width_px)
        for i in range(depth):
            layers: list[nn.Module] = [
                nn.Conv2d(channels if i == 0 else width, width, 3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            ]
            if size >= 4:  # halve the resolution while there is some to spare
                layers.append(nn.MaxPool2d(2))
                size //= 2
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))  # (B, width) global average pool
        self.head = nn.Linear(width, num_classes)


@register_model("cnn2d", input_rank=3, family="cnn", spatial=True,
                sizes={"tiny": (8, 1), "small": (16, 2), "medium": (32, 2), "large": (64, 3)})
def cnn2d(input_shape: tuple[int, ...], num_classes: int, width: int = 32, depth: int = 2) -> CNN2d:
    """2-d CNN: `depth` conv-BN-ReLU(-maxpool) blocks of `width` channels, for (C, H, W) images."""
    return CNN2d(input_shape, num_classes, width, depth)
