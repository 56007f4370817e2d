"""Vanilla knowledge distillation (Hinton et al. 2015)."""

from __future__ import annotations

import torch.nn.functional as F

from kdcore.losses.response import kd_kl
from kdcore.methods.base import Batch, Method, StepOutput
from kdcore.registry import register_method


@register_method("kd")
class KD(Method):
    """Soft labels: T^2-scaled KL to the teacher's softened outputs, mixed with cross-entropy by alpha."""

    knowledge = "response"

    def step(self, batch: Batch) -> StepOutput:
        logits = self.student(batch.x).logits
        alpha, temperature = self.cfg.alpha, self.cfg.temperature
        return StepOutput(logits, {
            "ce": (1 - alpha) * F.cross_entropy(logits, batch.y),
            "kd": alpha * kd_kl(logits, self.teacher.logits(batch), temperature),
        })
