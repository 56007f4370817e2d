"""Vanilla knowledge distillation (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network")."""

from __future__ import annotations

from typing import Any

from kdcore.methods.terms import TermMethod, TermSpec
from kdcore.registry import register_method


@register_method("kd")
class KD(TermMethod):
    """Soft labels: T^2-scaled KL to the teacher's softened outputs, mixed with cross-entropy by alpha.

    Loss: ``(1 - alpha) * CE + alpha * T^2 * KL(p_t^T || p_s^T)``. The defaults are the reference's:
    ``distill.alpha`` 0.9 and ``distill.temperature`` 4 are mdistiller's ``KD.LOSS.CE_WEIGHT: 0.1``,
    ``KD_WEIGHT: 0.9``, ``KD.TEMPERATURE: 4`` (mdistiller/engine/cfg.py) and RepDistiller's
    ``--distill kd -r 0.1 -a 0.9 --kd_T 4`` (scripts/run_cifar_distill.sh); the KL is averaged over the
    batch in both.
    """

    knowledge = "response"

    @classmethod
    def specs(cls, params: Any) -> list[TermSpec]:
        return [TermSpec(term="kd")]
