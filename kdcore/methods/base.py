"""The method interface (the mdistiller shape): a thin module that turns a batch into weighted losses.

A method owns the student and its own adapters; the teacher sits behind a :class:`TeacherSource`
so that it is never among the trainable parameters and its outputs can come from a cache.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from kdcore.models.ensemble import Ensemble
from kdcore.registry import METHODS


@dataclass
class Batch:
    x: torch.Tensor  # (B, *input_shape)
    y: torch.Tensor  # (B,)
    index: torch.Tensor  # (B,) positions in the training split, for cached teacher outputs
    host_index: torch.Tensor | None = None  # the same positions on the CPU, for a cache kept in CPU memory


@dataclass
class StepOutput:
    logits: torch.Tensor  # (B, K) the student's
    losses: dict[str, torch.Tensor]  # name -> already weighted scalar; the engine sums them
    # Co-trained peers' logits (role -> (B, K)); their loss names are prefixed "role/".
    peer_logits: dict[str, torch.Tensor] = field(default_factory=dict)


class TeacherSource:
    """The frozen teacher's outputs for a batch: looked up in a cache, or computed without grad.

    The cache holds the teacher's outputs on the whole training split (``logits`` and any named
    features a method reads), computed once when the data pipeline is deterministic; otherwise the
    teacher runs without grad each step. The cache lives on the training device, or in CPU memory,
    from where each batch's rows are copied to the device. ``placement`` says which and why, as a short note
    (the role's ``kd.teacher_cache`` tag); whoever builds the cache sets it.
    """

    def __init__(self, model: nn.Module, cache: dict[str, torch.Tensor] | None = None) -> None:
        self.model = model.eval().requires_grad_(False)
        self.cache = cache  # key -> (N_train, ...) or None
        self.placement = ""  # e.g. "device (cuda, 0.12 GiB)", "live: train.cache_gib is 0"

    def logits(self, batch: Batch) -> torch.Tensor:
        return self.outputs(batch, {"logits"})["logits"]

    def serves(self, keys: set[str]) -> bool:
        """Whether the cache answers ``keys`` (else the teacher runs on the batch's inputs)."""
        return self.cache is not None and keys <= self.cache.keys()

    def outputs(self, batch: Batch, keys: set[str]) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """``logits``, named features and/or ``attentions`` of the teacher on this batch."""
        if self.cache is not None and keys <= self.cache.keys():
            return {key: cached_rows(self.cache[key], batch) for key in keys}
        with torch.no_grad():  # not inference mode: its tensors could not be saved for backward without a copy
            out = self.model(batch.x)
        found: dict[str, torch.Tensor | list[torch.Tensor]] = {}
        for key in keys:
            if key == "logits":
                found[key] = out.logits
            elif key == "attentions":
                found[key] = list(out.attentions or [])
            else:
                found[key] = out.features[key]
        return found


def cached_rows(table: torch.Tensor, batch: Batch) -> torch.Tensor:
    """``batch``'s rows of a cached table, on the batch's device: gathered there when the table lives there, else
    gathered in CPU memory and copied over (through pinned memory, without waiting, on CUDA)."""
    device = batch.index.device
    if table.device == device:
        return table[batch.index]
    rows = table[batch.host_index if batch.host_index is not None else batch.index.cpu()]
    if device.type == "cuda":
        rows = rows.pin_memory()
    return rows.to(device, non_blocking=True)


class Method(nn.Module, ABC):
    """Base of every method. Subclasses set ``knowledge`` and implement :meth:`step`.

    ``needs_teacher`` False means the method trains from labels alone (teacher and baseline roles).
    ``Params`` (optional pydantic model) validates ``distill.params``.
    """

    knowledge: ClassVar[str] = "response"
    needs_teacher: ClassVar[bool] = True

    many_teachers: ClassVar[bool] = False  # True: it can also learn from ``more_teachers``

    def __init__(self, student: nn.Module, teacher: TeacherSource | None, cfg: Any,
                 example: torch.Tensor | None = None, more_teachers: Sequence[TeacherSource] = (),
                 weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if self.needs_teacher and teacher is None:
            raise ValueError(f"method {type(self).__name__} needs a teacher")
        if more_teachers and not self.many_teachers:
            raise ValueError(f"method {type(self).__name__} learns from one teacher only")
        self.student = student
        self.teacher = teacher  # not a submodule: never trained, never in state_dict
        self.more_teachers = list(more_teachers)  # e.g. the original teacher of a chain (skip-to-teacher)
        self.cfg = cfg
        self.teacher_weights = teacher_weights(1 + len(self.more_teachers) if teacher else 0, weights)

    @abstractmethod
    def step(self, batch: Batch) -> StepOutput:
        """The student's logits and the weighted loss terms for one training batch."""

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The student's parameters and the method's own adapters."""
        return self.parameters()

    def begin_epoch(self, epoch: int) -> None:
        """Called by the engine before each epoch (0-based), also after a resume; a method with phases
        (e.g. alignment, then distillation) switches here. Nothing by default."""

    def peers(self) -> dict[str, nn.Module]:
        """Models trained in the same loop as the student, by role (online learning); none by default.

        The engine evaluates, selects and reports each as its own role.
        """
        return {}

    def teacher_keys(self, source: int = 0) -> set[str]:
        """The outputs :meth:`step` reads from teacher ``source`` (0 = ``teacher``, then ``more_teachers``):
        ``logits`` and feature names, what a study may cache."""
        return {"logits"} if self.needs_teacher else set()

    def teacher_sources(self) -> list[TeacherSource]:
        """Every teacher this method and the methods inside it (an ensemble's members') learn from, once each."""
        found: dict[int, TeacherSource] = {}
        for module in self.modules():
            if isinstance(module, Method):
                for source in ([module.teacher] if module.teacher is not None else []) + module.more_teachers:
                    found.setdefault(id(source), source)
        return list(found.values())

    def teacher_placement(self, default: str = "") -> str:
        """Where the teachers' outputs come from while this method trains: each source's ``placement`` (else
        ``default``, else ``cached`` or ``live``), the distinct ones joined by "; "; empty without a teacher."""
        notes = [source.placement or default or ("cached" if source.cache is not None else "live")
                 for source in self.teacher_sources()]
        return "; ".join(dict.fromkeys(notes))


def teacher_weights(count: int, weights: Sequence[float] | None) -> list[float]:
    """How much each of ``count`` teachers counts, summing to 1: ``weights`` normalised, or equal without them."""
    if weights is None:
        return [1 / count] * count if count else []
    if len(weights) != count or not all(w > 0 for w in weights):
        raise ValueError(f"teacher weights: give {count} positive numbers, one per teacher (got {list(weights)})")
    total = sum(weights)
    return [w / total for w in weights]


class EnsembleMethod(Method):
    """Trains every member of an :class:`~kdcore.models.ensemble.Ensemble` with its own instance of a method,
    in one loop.

    Each member learns as it would alone: the members share no parameters and their losses are summed, so
    each gets exactly its own gradient (``train/loss_*`` are the members' sums). The step's logits are the
    ensemble's, so the engine keeps the epoch at which the ensemble as a whole is best on validation.
    """

    needs_teacher: ClassVar[bool] = False  # the members' methods hold the teachers

    def __init__(self, ensemble: Ensemble, methods: Sequence[Method]) -> None:
        super().__init__(ensemble, None, methods[0].cfg)
        self.methods = nn.ModuleList(methods)

    def step(self, batch: Batch) -> StepOutput:
        outs = [method.step(batch) for method in self.methods]
        losses = {name: torch.stack([out.losses[name] for out in outs]).sum() for name in outs[0].losses}
        return StepOutput(self.student.combine([out.logits for out in outs]), losses)

    def begin_epoch(self, epoch: int) -> None:
        for method in self.methods:
            method.begin_epoch(epoch)

    def teacher_keys(self, source: int = 0) -> set[str]:
        return set().union(*(method.teacher_keys(source) for method in self.methods))


def build_method(name: str, student: nn.Module, teacher: TeacherSource | None, cfg: Any,
                 example: torch.Tensor | None = None, more_teachers: Sequence[TeacherSource] = (),
                 weights: Sequence[float] | None = None) -> Method:
    """The registered method ``name``; ``example`` (a few inputs) lets it size adapters to the features.

    ``weights`` says how much ``teacher`` and each of ``more_teachers`` count (None = equally). An
    :class:`~kdcore.models.ensemble.Ensemble` student trains each member with the method, from the same teachers.
    """
    if isinstance(student, Ensemble):
        return EnsembleMethod(student, [build_method(name, member, teacher, cfg, example, more_teachers, weights)
                                        for member in student.members])
    return METHODS.get(name)(student, teacher, cfg, example, more_teachers, weights)
