"""Attention transfer (Zagoruyko & Komodakis 2017, "Paying More Attention to Attention")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec
from kdcore.registry import register_method


@register_method("at")
class AT(TermMethod):
    """Spatial attention maps of a feature map, matched between student and teacher; shapes need not agree."""

    knowledge = "feature"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        weight: float = Field(1000.0, ge=0, description="Weight of the attention term (the paper's beta).")
        layers: list[str] = Field(default_factory=lambda: ["last"],
                                  description="Feature maps matched by name on both sides, e.g. [block1, last].")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="at", weight=params.weight, student_layer=layer) for layer in params.layers]
