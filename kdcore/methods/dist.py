"""DIST (Huang et al. 2022, "Knowledge Distillation from A Stronger Teacher")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec
from kdcore.registry import register_method


@register_method("dist")
class DIST(TermMethod):
    """Correlation, not exact match: Pearson relations between and within classes of the soft outputs.

    Loss: ``(1 - alpha) * CE + alpha * T^2 * (inter_weight * inter + intra_weight * intra)``. The term weights
    are the paper's beta = gamma = 1 (hunto/image_classification_sota lib/models/losses/kd_loss.py,
    ``DIST(beta=1, gamma=1)``). The reference adds DIST to cross-entropy with ``ori_loss_weight`` 1 and
    ``kd_loss_weight`` 1: that balance is ``distill.alpha`` 0.5 (the whole loss halved, which Adam's update
    does not see and SGD sees as half the learning rate); alpha keeps its meaning here, so with the default
    0.9 the labels weigh less than in the reference. That reference softmaxes the raw logits (temperature 1);
    here ``distill.temperature`` applies (4 by default, with the T^2 factor, as for kd).
    """

    knowledge = "response"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        inter_weight: float = Field(1.0, ge=0, description="Inter-class relation weight (the paper's beta, 1).")
        intra_weight: float = Field(1.0, ge=0, description="Intra-class relation weight (the paper's gamma, 1).")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="dist_inter", weight=params.inter_weight),
                TermSpec(term="dist_intra", weight=params.intra_weight)]
