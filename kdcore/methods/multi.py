"""Multi-level distillation: any weighted list of response, feature and relation terms in one method."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec
from kdcore.registry import register_method


@register_method("multi")
class Multi(TermMethod):
    """Several knowledge types at once: a weighted list of terms, each naming the features it reads."""

    knowledge = "multi"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        terms: list[TermSpec] = Field(
            default_factory=lambda: [TermSpec(term="kd"), TermSpec(term="rkd_distance", weight=25.0)],
            min_length=1, description="Weighted terms, e.g. [{term: kd}, {term: hint, student_layer: block1}].")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return list(params.terms)

    @classmethod
    def check(cls, cfg: Any, field: str = "distill.params.terms") -> None:
        super().check(cfg, field)
