"""Vanilla knowledge distillation (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network")."""

from __future__ import annotations

from typing import Any

from kdcore.methods.terms import TermMethod, TermSpec
from kdcore.registry import register_method


@register_method("kd")
class KD(TermMethod):
    """Soft labels: T^2-scaled KL to the teacher's softened outputs, mixed with cross-entropy by alpha."""

    knowledge = "response"

    @classmethod
    def specs(cls, params: Any) -> list[TermSpec]:
        return [TermSpec(term="kd")]
