"""Wide Residual Networks (Zagoruyko & Komodakis 2016, "Wide Residual Networks").

WRN-N-k as in the RepDistiller / CRD model zoo (Tian et al. 2020): a 3x3 conv stem of 16 channels,
three stages of n = (N - 4) / 6 pre-activation basic blocks (BN-ReLU-conv twice) with 16k, 32k, 64k
channels, the last two at stride 2, 1x1 conv shortcuts where the shape changes, then BN-ReLU, global
average pooling and a linear head. Dropout is 0, as in the distillation literature.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from kdcore.models.base import BlockNet
from kdcore.models.resnet import init_weights, register_variant
from kdcore.registry import register_model


class WideBlock(nn.Module):
    """Pre-activation basic block; where the shape changes the shortcut also reads the activated input."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return out + (x if self.shortcut is None else self.shortcut(a))


class WideResNet(BlockNet):
    """WRN-``depth``-``widen``: depth = 6n + 4 layers, channels 16, 16k, 32k, 64k."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, depth: int, widen: int) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"wrn depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...); got {depth}")
        blocks = (depth - 4) // 6
        in_channels, _, _ = input_shape
        channels = (16, 16 * widen, 32 * widen, 64 * widen)
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False)
        stages = []
        for (c_in, c_out), stride in zip(pairwise(channels), (1, 2, 2), strict=True):
            stages.append(nn.Sequential(*(WideBlock(c_in if b == 0 else c_out, c_out, stride if b == 0 else 1)
                                          for b in range(blocks))))
        # Stage i gives (B, C_i, H / 2^(i-1), W / 2^(i-1)), the residual sum before activation, as
        # RepDistiller's f1..f3 (is_feat, preact=False); the neck activates the last one, then pools.
        self.blocks = nn.ModuleList(stages)
        self.neck = nn.Sequential(nn.BatchNorm2d(channels[-1]), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.head = nn.Linear(channels[-1], num_classes)
        init_weights(self)


# name -> (depth N, widen factor k)
VARIANTS: dict[str, tuple[int, int]] = {
    "wrn_16_1": (16, 1),
    "wrn_16_2": (16, 2),
    "wrn_40_1": (40, 1),
    "wrn_40_2": (40, 2),
}

for _name, (_depth, _widen) in VARIANTS.items():
    register_variant(
        _name, "wrn", (_widen, (_depth - 4) // 6),
        lambda shape, classes, d=_depth, k=_widen: WideResNet(shape, classes, d, k),
        f"Wide ResNet WRN-{_depth}-{_widen} (Zagoruyko & Komodakis 2016), as in RepDistiller; fixed size.",
    )


@register_model("wrn", input_rank=3, family="wrn", spatial=True,
                sizes={"tiny": (1, 1), "small": (1, 2), "medium": (2, 2), "large": (2, 6)})
def wrn(input_shape: tuple[int, ...], num_classes: int, width: int | None = None,
        depth: int | None = None) -> WideResNet:
    """Wide ResNet (Zagoruyko & Komodakis 2016): widen factor `width`, `depth` pre-activation blocks per stage.

    `depth` counts blocks per stage (n), not layers, so that it fits the config's depth range: the
    network is WRN-(6n + 4)-k. The defaults (width 1, depth 2) give WRN-16-1.
    """
    width = 1 if width is None else width
    depth = 2 if depth is None else depth
    return WideResNet(input_shape, num_classes, 6 * depth + 4, width)
