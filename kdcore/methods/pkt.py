"""Probabilistic knowledge transfer (Passalis & Tefas 2018, "Learning Deep Representations with PKT")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec
from kdcore.registry import register_method


@register_method("pkt")
class PKT(TermMethod):
    """Match the conditional probability of neighbours in embedding space (cosine kernels, KL)."""

    knowledge = "relation"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        # kdcore's pkt averages per sample, the reference code over all pairs: its 30000 becomes ~30000/B.
        weight: float = Field(250.0, ge=0, description="Weight of the term.")
        layer: str = Field("penultimate", description="Embedding read on both sides.")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="pkt", weight=params.weight, student_layer=params.layer)]
