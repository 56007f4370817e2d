"""The method interface (the mdistiller shape): a thin module that turns a batch into weighted losses.

A method owns the student and its own adapters; the teacher sits behind a :class:`TeacherSource`
so that it is never among the trainable parameters and its outputs can come from a cache.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from kdcore.registry import METHODS


@dataclass
class Batch:
    x: torch.Tensor  # (B, *input_shape)
    y: torch.Tensor  # (B,)
    index: torch.Tensor  # (B,) positions in the training split, for cached teacher outputs


@dataclass
class StepOutput:
    logits: torch.Tensor  # (B, K) the student's
    losses: dict[str, torch.Tensor]  # name -> already weighted scalar; the engine sums them


class TeacherSource:
    """The frozen teacher's logits for a batch: looked up in a cache, or computed without grad.

    The cache holds the teacher's logits on the whole training split, computed once when the
    data pipeline is deterministic; otherwise the teacher runs under inference mode each step.
    """

    def __init__(self, model: nn.Module, cache: torch.Tensor | None = None) -> None:
        self.model = model.eval().requires_grad_(False)
        self.cache = cache  # (N_train, K) or None

    def logits(self, batch: Batch) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[batch.index]
        with torch.inference_mode():
            logits = self.model(batch.x).logits
        return logits.clone()  # inference tensors cannot be saved for backward; a clone can


class Method(nn.Module, ABC):
    """Base of every method. Subclasses set ``knowledge`` and implement :meth:`step`.

    ``needs_teacher`` False means the method trains from labels alone (teacher and baseline roles).
    ``Params`` (optional pydantic model) validates ``distill.params``.
    """

    knowledge: ClassVar[str] = "response"
    needs_teacher: ClassVar[bool] = True

    def __init__(self, student: nn.Module, teacher: TeacherSource | None, cfg: Any) -> None:
        super().__init__()
        if self.needs_teacher and teacher is None:
            raise ValueError(f"method {type(self).__name__} needs a teacher")
        self.student = student
        self.teacher = teacher  # not a submodule: never trained, never in state_dict
        self.cfg = cfg

    @abstractmethod
    def step(self, batch: Batch) -> StepOutput:
        """The student's logits and the weighted loss terms for one training batch."""

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The student's parameters and the method's own adapters."""
        return self.parameters()


def build_method(name: str, student: nn.Module, teacher: TeacherSource | None, cfg: Any) -> Method:
    return METHODS.get(name)(student, teacher, cfg)
