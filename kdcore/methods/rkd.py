"""Relational knowledge distillation (Park et al. 2019, "Relational Knowledge Distillation")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec, ce_weight_field
from kdcore.registry import register_method


@register_method("rkd")
class RKD(TermMethod):
    """Structure between samples: pairwise distances and triplet angles of the embeddings.

    Loss: ``ce_weight * CE + distance_weight * RKD-D + angle_weight * RKD-A``, alpha not applied (see
    :mod:`kdcore.methods.terms`). Defaults and sources:

    * ``distance_weight`` 25 and ``angle_weight`` 50: mdistiller's ``RKD.DISTANCE_WEIGHT: 25``,
      ``RKD.ANGLE_WEIGHT: 50`` with ``RKD.LOSS.FEAT_WEIGHT: 1.0`` (mdistiller/engine/cfg.py) and RepDistiller's
      ``RKDLoss(w_d=25, w_a=50)`` (distiller_zoo/RKD.py) with ``-a 0 -b 1`` (scripts/run_cifar_distill.sh),
      after Park et al. 2019; both terms are the Huber (smooth L1) loss averaged over all B^2 pairs and
      B^3 triplets there as here, distances divided by their mean over the batch, so the weights mean the same;
    * ``ce_weight`` 1: ``RKD.LOSS.CE_WEIGHT: 1.0``, RepDistiller's ``-r 1``;
    * ``layer`` penultimate: the pooled embedding the reference reads (``pooled_feat`` / ``feat[-1]``).
    """

    knowledge = "relation"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        distance_weight: float = Field(25.0, ge=0, description="Distance term weight (reference code: 25).")
        angle_weight: float = Field(50.0, ge=0, description="Angle term weight (reference code: 50).")
        ce_weight: float = ce_weight_field()
        layer: str = Field("penultimate", description="Embedding read on both sides.")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="rkd_distance", weight=params.distance_weight, student_layer=params.layer),
                TermSpec(term="rkd_angle", weight=params.angle_weight, student_layer=params.layer)]
