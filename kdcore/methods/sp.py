"""Similarity-preserving KD (Tung & Mori 2019, "Similarity-Preserving Knowledge Distillation")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec
from kdcore.registry import register_method


@register_method("sp")
class SP(TermMethod):
    """Samples that look alike to the teacher should look alike to the student: batch similarity matrices."""

    knowledge = "relation"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        weight: float = Field(3000.0, ge=0, description="Weight of the term (the paper's gamma).")
        layer: str = Field("last", description="Feature read on both sides.")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="sp", weight=params.weight, student_layer=params.layer)]
