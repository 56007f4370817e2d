"""FitNets hints (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec, ce_weight_field
from kdcore.registry import register_method


@register_method("fitnet")
class FitNet(TermMethod):
    """Feature hints: a learned adapter maps a student feature onto the teacher's, matched by MSE.

    Loss: ``ce_weight * CE + weight * MSE(adapter(f_s), f_t)``, alpha not applied (see
    :mod:`kdcore.methods.terms`). Defaults and sources:

    * ``weight`` 100: mdistiller's ``FITNET.LOSS.FEAT_WEIGHT: 100.0`` (mdistiller/engine/cfg.py) and
      RepDistiller's ``--distill hint -a 0 -b 100`` (scripts/run_cifar_distill.sh); the MSE is averaged over
      every element there (``F.mse_loss`` / ``nn.MSELoss()``) as here, so the weight means the same;
    * ``ce_weight`` 1: ``FITNET.LOSS.CE_WEIGHT: 1.0``, RepDistiller's ``-r 1``;
    * the layer differs: the reference hints the second of the network's three stages (``HINT_LAYER: 2``,
      a feature map through a conv regressor, in one stage of training, as RepDistiller does, not the paper's
      two), while the default here is ``penultimate`` on both sides (any pair of models has it); set
      ``student_layer`` (e.g. ``block1``) for a middle feature map.
    """

    knowledge = "feature"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        weight: float = Field(100.0, ge=0, description="Weight of the hint term (RepDistiller's beta, 100).")
        ce_weight: float = ce_weight_field()
        student_layer: str = Field("penultimate", description="Student feature (the guided layer).")
        teacher_layer: str | None = Field(None, description="Teacher feature (the hint); empty = same name.")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="hint", weight=params.weight, student_layer=params.student_layer,
                         teacher_layer=params.teacher_layer)]
