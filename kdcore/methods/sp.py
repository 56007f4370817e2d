"""Similarity-preserving KD (Tung & Mori 2019, "Similarity-Preserving Knowledge Distillation")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec, ce_weight_field
from kdcore.registry import register_method


@register_method("sp")
class SP(TermMethod):
    """Samples that look alike to the teacher should look alike to the student: batch similarity matrices.

    Loss: ``ce_weight * CE + weight * ||G_s - G_t||_F^2 / B^2`` with G the row-normalised batch Gram matrix,
    alpha not applied (see :mod:`kdcore.methods.terms`). Defaults and sources:

    * ``weight`` 3000: the paper's gamma = 3000 (Tung & Mori 2019), mdistiller's ``SP.LOSS.FEAT_WEIGHT:
      3000.0`` (mdistiller/engine/cfg.py) and RepDistiller's ``--distill similarity -a 0 -b 3000``
      (scripts/run_cifar_distill.sh); the term is divided by B^2 there as here, so the weight means the same;
    * ``ce_weight`` 1: ``SP.LOSS.CE_WEIGHT: 1.0``, RepDistiller's ``-r 1``;
    * ``layer`` last: the last stage's feature map, before pooling, as the reference reads it
      (``feats[-1]`` / ``feat[-2]``).
    """

    knowledge = "relation"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        weight: float = Field(3000.0, ge=0, description="Weight of the term (the paper's gamma, 3000).")
        ce_weight: float = ce_weight_field()
        layer: str = Field("last", description="Feature read on both sides.")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="sp", weight=params.weight, student_layer=params.layer)]
