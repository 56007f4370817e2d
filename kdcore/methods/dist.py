"""DIST (Huang et al. 2022, "Knowledge Distillation from A Stronger Teacher")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec
from kdcore.registry import register_method


@register_method("dist")
class DIST(TermMethod):
    """Correlation, not exact match: Pearson relations between and within classes of the soft outputs."""

    knowledge = "response"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        inter_weight: float = Field(1.0, ge=0, description="Inter-class relation weight (the paper's beta).")
        intra_weight: float = Field(1.0, ge=0, description="Intra-class relation weight (the paper's gamma).")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="dist_inter", weight=params.inter_weight),
                TermSpec(term="dist_intra", weight=params.intra_weight)]
