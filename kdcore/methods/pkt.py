"""Probabilistic knowledge transfer (Passalis & Tefas 2018, "Learning Deep Representations with PKT")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kdcore.methods.terms import TermMethod, TermSpec, ce_weight_field
from kdcore.registry import register_method


@register_method("pkt")
class PKT(TermMethod):
    """Match the conditional probability of neighbours in embedding space (cosine kernels, KL).

    Loss: ``ce_weight * CE + weight * pkt`` with pkt the mean over all B^2 pairs of
    ``p_t(j|i) log(p_t(j|i) / p_s(j|i))``, alpha not applied (see :mod:`kdcore.methods.terms`). Defaults and
    sources:

    * ``weight`` 30000: RepDistiller's ``--distill pkt -a 0 -b 30000`` (scripts/run_cifar_distill.sh) and
      mdistiller's ``PKT.LOSS.FEAT_WEIGHT: 30000.0`` (mdistiller/engine/cfg.py); the term is averaged over all
      B^2 pairs there (``torch.mean``, from the authors' code) as here, so the weight means the same. That
      mean is the per-sample KL divided by B: the term's strength falls as the batch grows (the reference
      trains with batches of 64);
    * ``ce_weight`` 1: ``PKT.LOSS.CE_WEIGHT: 1.0``, RepDistiller's ``-r 1``;
    * ``layer`` penultimate: the pooled embedding the reference reads (``pooled_feat`` / ``feat[-1]``).
    """

    knowledge = "relation"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        weight: float = Field(30000.0, ge=0, description="Weight of the term (RepDistiller's beta, 30000).")
        ce_weight: float = ce_weight_field()
        layer: str = Field("penultimate", description="Embedding read on both sides.")

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="pkt", weight=params.weight, student_layer=params.layer)]
