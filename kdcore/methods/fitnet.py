"""FitNets hints (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec
from kdcore.registry import register_method


@register_method("fitnet")
class FitNet(TermMethod):
    """Feature hints: a learned adapter maps a student feature onto the teacher's, matched by MSE."""

    knowledge = "feature"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        weight: float = Field(1.0, ge=0, description="Weight of the hint term.")
        student_layer: str = Field("penultimate", description="Student feature (the guided layer).")
        teacher_layer: str | None = Field(None, description="Teacher feature (the hint); empty = same name.")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="hint", weight=params.weight, student_layer=params.student_layer,
                         teacher_layer=params.teacher_layer)]
