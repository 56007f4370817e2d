"""Who teaches in a study: the teacher roles by number, their sources and weights, and ensembles of a
model with members that start from different seeds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from kdcore.methods.base import TeacherSource, teacher_weights
from kdcore.models.ensemble import Ensemble, members

SEED_STRIDE = 1000  # a role with seed offset k trains with train.seed + k * SEED_STRIDE


def teacher_role_name(k: int) -> str:
    """The role of teacher ``k``: 1 is the teacher, 2 and up are ``distill.teachers`` in order."""
    return "teacher" if k == 1 else f"teacher_{k}"


def teacher_sources(teachers: Sequence[Any], weights: Sequence[float] | None
                    ) -> tuple[list[TeacherSource], list[float]]:
    """One source per model that teaches (each of ``teachers`` has a ``model``), with its weight (``weights`` per
    teacher, empty = equal, normalised).

    An ensemble teaches through each of its members, which share its weight equally: mixing the members'
    softened outputs is mixing the ensemble's, at whatever temperature the student learns.
    """
    sources: list[TeacherSource] = []
    shares: list[float] = []
    for result, share in zip(teachers, teacher_weights(len(teachers), weights or None), strict=True):
        parts = members(result.model)
        sources += [TeacherSource(part) for part in parts]
        shares += [share / len(parts)] * len(parts)
    return sources, shares


def ensemble_builder(build: Callable[[], nn.Module], count: int) -> Callable[[], nn.Module]:
    """Builds ``count`` models as one :class:`Ensemble`; member i starts from the current seed plus offset i
    (``SEED_STRIDE`` apart, like roles), so the members begin from different weights (they share the batch order)."""
    def make() -> Ensemble:
        seed = torch.initial_seed()  # the role's seed, set just before its models are built
        parts = []
        for i in range(count):
            torch.manual_seed(seed + i * SEED_STRIDE)
            parts.append(build())
        return Ensemble(parts)
    return make
