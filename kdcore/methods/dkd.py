"""Decoupled knowledge distillation (Zhao et al. 2022, "Decoupled Knowledge Distillation")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from kdcore.methods.base import TeacherSource
from kdcore.methods.terms import TermMethod, TermSpec
from kdcore.registry import register_method


def warmup_scale(epoch: int, warmup_epochs: int) -> float:
    """The share of the distillation loss in 0-based ``epoch``: ``min((epoch + 1) / warmup_epochs, 1)``, i.e.
    mdistiller's ``min(epoch / WARMUP, 1)`` with its 1-based epochs; 1 throughout when ``warmup_epochs`` is 0."""
    return 1.0 if warmup_epochs <= 0 else min((epoch + 1) / warmup_epochs, 1.0)


@register_method("dkd")
class DKD(TermMethod):
    """KD split into target-class (TCKD) and non-target-class (NCKD) parts, weighted apart.

    Loss in epoch e (0-based): ``(1 - alpha) * CE + alpha * w(e) * T^2 * (target_weight * TCKD +
    nontarget_weight * NCKD)`` with the warm-up ``w(e) = min((e + 1) / warmup_epochs, 1)``.

    Defaults and sources (the paper's CIFAR-100 settings as the authors' code has them: mdistiller's
    mdistiller/engine/cfg.py ``CFG.DKD`` and mdistiller/distillers/DKD.py):

    * ``target_weight`` 1 and ``nontarget_weight`` 8: ``DKD.ALPHA: 1.0``, ``DKD.BETA: 8.0`` (CIFAR-100; some
      pairs use another beta, e.g. 6 in configs/cifar100/dkd/wrn40_2_wrn_16_2.yaml, and ImageNet 0.5);
    * temperature 4 (``DKD.T: 4.0``) is ``distill.temperature``'s default;
    * the warm-up: the reference scales the DKD loss by ``min(epoch / WARMUP, 1)`` with ``WARMUP: 20`` of 240
      epochs on CIFAR-100 (1/12 of training; 1 of 100 on ImageNet). A method does not see the budget, so
      the warm-up is in epochs: ``warmup_epochs`` 2, about 1/12 of kdx's 10 to 20-epoch budgets (the first
      epoch at half strength, full from the second on); 0 (or 1) turns it off. Only this method warms up:
      ``multi``'s dkd terms and the mechanisms that exchange outputs (online, self, cross_modal) do not;
    * the reference keeps cross-entropy at weight 1 beside the DKD loss (``DKD.CE_WEIGHT: 1.0``): that balance
      is ``distill.alpha`` 0.5 (the whole loss halved, which Adam's update does not see and SGD sees as half
      the learning rate). alpha keeps its meaning here, so with the default 0.9 the labels weigh a ninth of
      the distillation loss, against an equal share in the reference.

    The loss terms are normalised as in the reference: each KL summed over classes and divided by the batch size.
    """

    knowledge = "response"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        target_weight: float = Field(1.0, ge=0, description="TCKD weight (the paper's alpha, 1).")
        nontarget_weight: float = Field(8.0, ge=0, description="NCKD weight (the paper's beta, 8 on CIFAR-100).")
        warmup_epochs: int = Field(2, ge=0, le=10_000,
                                   description="The DKD loss grows linearly over these first epochs "
                                               "(mdistiller: 20 of 240); 0 = no warm-up.")

    def __init__(self, student: nn.Module, teacher: TeacherSource | None, cfg: Any,
                 example: torch.Tensor | None = None, more_teachers: Sequence[TeacherSource] = (),
                 weights: Sequence[float] | None = None) -> None:
        super().__init__(student, teacher, cfg, example, more_teachers, weights)
        self.begin_epoch(0)

    @classmethod
    def specs(cls, params: Params) -> list[TermSpec]:
        return [TermSpec(term="dkd_target", weight=params.target_weight),
                TermSpec(term="dkd_nontarget", weight=params.nontarget_weight)]

    def begin_epoch(self, epoch: int) -> None:
        """Set the warm-up's share of the DKD loss for ``epoch`` (the engine calls this before each, also after
        a resume, so the schedule follows the epoch, not the number of calls)."""
        self.response_scale = warmup_scale(epoch, self.params.warmup_epochs)
