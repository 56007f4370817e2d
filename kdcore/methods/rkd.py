"""Relational knowledge distillation (Park et al. 2019, "Relational Knowledge Distillation")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec
from kdcore.registry import register_method


@register_method("rkd")
class RKD(TermMethod):
    """Structure between samples: pairwise distances and triplet angles of the embeddings."""

    knowledge = "relation"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        distance_weight: float = Field(25.0, ge=0, description="Distance term weight (the paper's 25).")
        angle_weight: float = Field(50.0, ge=0, description="Angle term weight (the paper's 50).")
        layer: str = Field("penultimate", description="Embedding read on both sides.")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="rkd_distance", weight=params.distance_weight, student_layer=params.layer),
                TermSpec(term="rkd_angle", weight=params.angle_weight, student_layer=params.layer)]
