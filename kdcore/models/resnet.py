"""CIFAR ResNets (He et al. 2016, "Deep Residual Learning for Image Recognition", section 4.2).

The definitions follow the knowledge-distillation model zoo of RepDistiller / CRD (Tian et al. 2020,
"Contrastive Representation Distillation"), so teacher-student pairs such as resnet56 -> resnet20 or
resnet32x4 -> resnet8x4 have the literature's architectures and parameter counts: a 3x3 conv-BN-ReLU
stem, three stages of ``n`` basic blocks (depth 6n + 2), the last two stages at stride 2, 1x1 conv-BN
projection shortcuts where the shape changes, global average pooling and a linear head. The pooling is
adaptive, so 8x8 digits work as well as 32x32 CIFAR images.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from kdcore.models.base import BlockNet
from kdcore.registry import register_model

PRESETS = ("tiny", "small", "medium", "large")


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers added to the input, then ReLU (post-activation, He et al. 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:  # projection shortcut (option B)
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(BlockNet):
    """Stem, three stages of ``blocks`` basic blocks, global average pooling, linear head.

    ``channels`` = (stem, stage 1, stage 2, stage 3), e.g. (16, 16, 32, 64) for resnet20 and
    (32, 64, 128, 256) for the x4 variants.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, blocks: int,
                 channels: tuple[int, int, int, int]) -> None:
        super().__init__()
        in_channels, _, _ = input_shape
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels[0]), nn.ReLU())
        stages = []
        for (c_in, c_out), stride in zip(pairwise(channels), (1, 2, 2), strict=True):
            stages.append(nn.Sequential(*(BasicBlock(c_in if b == 0 else c_out, c_out, stride if b == 0 else 1)
                                          for b in range(blocks))))
        self.blocks = nn.ModuleList(stages)  # stage i gives (B, C_i, H / 2^(i-1), W / 2^(i-1))
        self.neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))  # (B, C3) global average pool
        self.head = nn.Linear(channels[-1], num_classes)
        init_weights(self)


def init_weights(model: nn.Module) -> None:
    """He-normal convolutions (fan-out), unit-scale BatchNorm: the RepDistiller initialisation."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def register_variant(name: str, family: str, size: tuple[int, int], build: Callable[..., nn.Module],
                     doc: str) -> None:
    """Register a named, fixed-size model of a family; ``size`` is its (width, depth) in the family's terms."""

    def builder(input_shape: tuple[int, ...], num_classes: int, width: int | None = None,
                depth: int | None = None) -> nn.Module:
        if width is not None or depth is not None:
            raise ValueError(f"{name} has a fixed size; leave width and depth empty")
        return build(input_shape, num_classes)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    register_model(name, input_rank=3, family=family, fixed_size=True, spatial=True,
                   sizes=dict.fromkeys(PRESETS, size))(builder)


# name -> (blocks per stage n, channels); depth = 6n + 2. The x4 variants are 4x wider except the stem (2x).
VARIANTS: dict[str, tuple[int, tuple[int, int, int, int]]] = {
    "resnet8": (1, (16, 16, 32, 64)),
    "resnet20": (3, (16, 16, 32, 64)),
    "resnet32": (5, (16, 16, 32, 64)),
    "resnet56": (9, (16, 16, 32, 64)),
    "resnet8x4": (1, (32, 64, 128, 256)),
    "resnet32x4": (5, (32, 64, 128, 256)),
}

for _name, (_blocks, _channels) in VARIANTS.items():
    register_variant(
        _name, "resnet", (_channels[1], _blocks),
        lambda shape, classes, b=_blocks, c=_channels: ResNet(shape, classes, b, c),
        f"CIFAR ResNet-{6 * _blocks + 2} (He et al. 2016) with stage channels {'/'.join(map(str, _channels[1:]))}, "
        f"as in RepDistiller; fixed size.",
    )


@register_model("resnet", input_rank=3, family="resnet", spatial=True,
                sizes={"tiny": (8, 1), "small": (16, 1), "medium": (16, 3), "large": (32, 5)})
def resnet(input_shape: tuple[int, ...], num_classes: int, width: int | None = None,
           depth: int | None = None) -> ResNet:
    """CIFAR ResNet (He et al. 2016): `depth` basic blocks per stage, stages of `width`, 2x and 4x channels.

    The network has 6 * depth + 2 layers; the defaults (width 16, depth 3) give resnet20. The stem has
    `width` channels too; the named x4 variants differ there (a 32-channel stem under 64/128/256 stages).
    """
    width = 16 if width is None else width
    depth = 3 if depth is None else depth
    return ResNet(input_shape, num_classes, depth, (width, width, 2 * width, 4 * width))
