"""Several models deployed as one: the members of an assistant stage (an ensemble of assistants)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kdcore.losses.response import mixture_logits
from kdcore.models.base import ModelOutput


class Ensemble(nn.Module):
    """Equally weighted members whose prediction is the mean of their predicted distributions.

    ``forward`` returns logits whose softmax is that mean, so evaluating, timing and counting the ensemble
    measures the stage as deployed (every member runs). Its ``features`` and attentions are the first
    member's: a model must name one set, and a term that teaches from an ensemble reads each member instead
    (see :func:`members`).
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def combine(self, logits: Sequence[torch.Tensor], temperature: float = 1.0) -> torch.Tensor:
        """The ensemble's logits from its members' (in member order), softened at ``temperature``."""
        return mixture_logits(logits, [1 / len(logits)] * len(logits), temperature)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        outs = [member(x) for member in self.members]
        first = outs[0]
        return ModelOutput(self.combine([out.logits for out in outs]), first.features, first.attentions,
                           first.attention_logits)


def members(model: nn.Module) -> list[nn.Module]:
    """The models that make up ``model``: an ensemble's members, else the model itself."""
    return list(model.members) if isinstance(model, Ensemble) else [model]
