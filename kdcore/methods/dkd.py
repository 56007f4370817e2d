"""Decoupled knowledge distillation (Zhao et al. 2022, "Decoupled Knowledge Distillation")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec
from kdcore.registry import register_method


@register_method("dkd")
class DKD(TermMethod):
    """KD split into target-class (TCKD) and non-target-class (NCKD) parts, weighted apart."""

    knowledge = "response"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        target_weight: float = Field(1.0, ge=0, description="TCKD weight (the paper's alpha).")
        nontarget_weight: float = Field(8.0, ge=0, description="NCKD weight (the paper's beta).")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="dkd_target", weight=params.target_weight),
                TermSpec(term="dkd_nontarget", weight=params.nontarget_weight)]
