"""Attention transfer (Zagoruyko & Komodakis 2017, "Paying More Attention to Attention")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec, ce_weight_field
from kdcore.registry import register_method


@register_method("at")
class AT(TermMethod):
    """Spatial attention maps of a feature map, matched between student and teacher; shapes need not agree.

    Loss: ``ce_weight * CE + weight * sum over layers of mean((Q_s - Q_t)^2)`` with Q the L2-normalised
    map of squared activations (p = 2), alpha not applied (see :mod:`kdcore.methods.terms`). Defaults and
    sources:

    * ``weight`` 1000: the paper's beta = 1000 divided by the batch size and the positions of the map
      (Zagoruyko & Komodakis 2017), mdistiller's
      ``AT.LOSS.FEAT_WEIGHT: 1000.0`` with ``AT.P: 2`` (mdistiller/engine/cfg.py, used by
      configs/cifar100/at.yaml) and RepDistiller's ``--distill attention -a 0 -b 1000``
      (scripts/run_cifar_distill.sh); the term is averaged over batch and positions there
      (``(at(f_s) - at(f_t)).pow(2).mean()``) as here, so the weight means the same;
    * the mean over positions makes the weight per map ``weight / N`` for a map of N positions: about 1 to 16 in
      the reference (CIFAR ResNets, 32x32 down to 8x8 maps), but 100 to 250 on small maps (MNIST-1D's 10
      positions, 8x8 digits' 2x2), where the term can drown cross-entropy; lower ``weight`` there;
    * ``ce_weight`` 1: ``AT.LOSS.CE_WEIGHT: 1.0``, RepDistiller's ``-r 1``;
    * the layers differ: the reference sums the term over every stage's output (``feats[1:]``), while the
      default here is the deepest block alone (``[last]``, which every spatial model has); set ``layers``,
      e.g. ``[block1, block2]``, for the reference's sum.
    """

    knowledge = "feature"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        weight: float = Field(1000.0, ge=0, description="Weight of the attention term (the paper's beta, 1000).")
        ce_weight: float = ce_weight_field()
        layers: list[str] = Field(default_factory=lambda: ["last"],
                                  description="Feature maps matched by name on both sides, e.g. [block1, last].")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="at", weight=params.weight, student_layer=layer) for layer in params.layers]
