"""Multi-level distillation: any weighted list of response, feature and relation terms in one method."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec
from kdcore.registry import register_method


@register_method("multi")
class Multi(TermMethod):
    """Several knowledge types at once: a weighted list of terms, each naming the features it reads.

    Each term weighs as in its own method (see :mod:`kdcore.methods.terms`): a response term (kd, dkd_*,
    dist_*) ``alpha * weight``, a feature or relation term ``weight`` alone; cross-entropy weighs ``1 - alpha``
    when some term is a response term, else 1. So ``[{term: at, weight: 1000}]`` is the ``at`` method and
    ``[{term: kd}]`` the ``kd`` method; the default ``[kd, rkd_distance 25]`` is
    ``(1 - alpha) * CE + alpha * KD + 25 * RKD-D``. A term's weight defaults to 1, not to its method's
    reference weight: give it (hint 100, at 1000, sp 3000, pkt 30000, rkd_distance 25, rkd_angle 50,
    dkd_nontarget 8). The dkd terms here have no warm-up (only the dkd method has one).
    """

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
