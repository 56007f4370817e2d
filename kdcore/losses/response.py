"""Response-based knowledge: terms over the teacher's output distribution."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al. 2015, "Distilling the Knowledge in a Neural Network".

    KL(p_teacher^T || p_student^T) averaged over the batch ("batchmean") and multiplied by T^2,
    so its gradients keep the same scale as the label loss whatever the temperature.
    """
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)  # (B, K)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)  # (B, K)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * (t * t)
