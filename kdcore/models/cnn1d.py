"""1-d convolutional network for sequences shaped (C, L), e.g. MNIST-1D."""

from __future__ import annotations

from torch import nn

from kdcore.models.base import BlockNet
from kdcore.registry import register_model


class CNN1d(BlockNet):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int) -> None:
        super().__init__()
        channels, _ = input_shape
        self.stem = nn.Identity()  # (B, C, L)
        blocks = []
        for i in range(depth):
            # The first block keeps the resolution; later ones halve it, like a small ResNet stem.
            blocks.append(nn.Sequential(
                nn.Conv1d(channels if i == 0 else width, width, 5, stride=1 if i == 0 else 2, padding=2),
                nn.BatchNorm1d(width),
                nn.ReLU(),
            ))
        self.blocks = nn.ModuleList(blocks)
        # (B, width, L_i) -> (B, width * 4): pooling to 4 keeps coarse position, which MNIST-1D labels depend on
        self.neck = nn.Sequential(nn.AdaptiveAvgPool1d(4), nn.Flatten(1))
        self.head = nn.Linear(width * 4, num_classes)


@register_model("cnn1d", input_rank=2, family="cnn", spatial=True,
                sizes={"tiny": (8, 1), "small": (16, 2), "medium": (32, 3), "large": (64, 4)})
def cnn1d(input_shape: tuple[int, ...], num_classes: int, width: int = 32, depth: int = 3) -> CNN1d:
    """1-d CNN: `depth` conv-BN-ReLU blocks of `width` channels (kernel 5), for (C, L) sequences."""
    return CNN1d(input_shape, num_classes, width, depth)
