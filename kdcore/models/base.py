"""The model contract: logits plus named intermediate features, built through the registry."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kdcore.registry import MODELS


@dataclass
class ModelOutput:
    """What every model returns.

    ``features`` uses stable names (``block1`` ... ``blockN``, ``penultimate``) so feature- and
    relation-based methods can say what they read without knowing the architecture.
    """

    logits: torch.Tensor  # (B, K)
    features: dict[str, torch.Tensor]
    attentions: list[torch.Tensor] | None = None


def build_model(cfg: object, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Instantiate the registered model named by a ``ModelConfig``."""
    builder = MODELS.get(cfg.name)  # type: ignore[attr-defined]
    sizes = {key: value for key in ("width", "depth") if (value := getattr(cfg, key, None)) is not None}
    return builder(input_shape=tuple(input_shape), num_classes=num_classes, **sizes)  # empty: the model's default


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
