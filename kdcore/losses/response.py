"""Response-based knowledge: terms over the teacher's output distribution."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def mixture_logits(logits: Sequence[torch.Tensor], weights: Sequence[float], temperature: float) -> torch.Tensor:
    """Logits whose softened distribution is the weighted mean of several models' softened distributions.

    Returns ``T * log(sum_i w_i softmax(z_i / T))`` (float32, computed in log space so a confident model never
    takes log(0)): softmax of it over ``T`` is exactly the mixture, so every response term reads it as one
    teacher's logits at that temperature. The distributions are averaged, not the terms' values, because the
    mixture is one consistent target, the ensemble's own prediction and less overconfident than any member:
    for KL the student's gradient is the same either way, but the term's value then measures the distance
    to what the teachers say together (0 when the student matches it), and terms that are not linear in the
    target (DKD's target/non-target split, DIST's correlations) would otherwise pull towards each teacher's
    shape in turn. ``weights`` must sum to 1.
    """
    t = temperature
    log_p = torch.stack([F.log_softmax(z.float() / t, dim=-1) for z in logits])  # (M, ..., K)
    log_w = torch.tensor(list(weights), dtype=log_p.dtype, device=log_p.device).log()  # (M,)
    return torch.logsumexp(log_p + log_w.view(-1, *[1] * (log_p.dim() - 1)), dim=0) * t  # (..., K)


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al. 2015, "Distilling the Knowledge in a Neural Network".

    KL(p_teacher^T || p_student^T) averaged over the batch ("batchmean") and multiplied by T^2,
    so its gradients keep the same scale as the label loss whatever the temperature.
    """
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)  # (B, K)
    log_p_teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)  # (B, K); never trains the teacher
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * (t * t)


def _binary_log_probs(z: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """log(p_target), log(1 - p_target) of softmax(z), via logsumexp so a confident target never takes log(0)."""
    log_z = z.logsumexp(-1, keepdim=True)  # (B, 1)
    log_target = z.masked_fill(~target_mask, float("-inf")).logsumexp(-1, keepdim=True)  # (B, 1)
    log_other = z.masked_fill(target_mask, float("-inf")).logsumexp(-1, keepdim=True)  # (B, 1)
    return torch.cat([log_target, log_other], dim=-1) - log_z  # (B, 2)


def dkd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    temperature: float,
    alpha: float = 1.0,
    beta: float = 8.0,
) -> torch.Tensor:
    """Zhao et al. 2022, CVPR, "Decoupled Knowledge Distillation".

    DKD = alpha * TCKD + beta * NCKD, both T^2-scaled KL(teacher || student) averaged over the batch:
    TCKD over the binary distribution (p_target, 1 - p_target); NCKD over the non-target classes only,
    renormalised by masking the target logit with -1000 before the softmax (as the reference code does).
    """
    t = temperature
    z_s = student_logits.float() / t  # (B, K)
    z_t = teacher_logits.detach().float() / t  # (B, K)
    target_mask = F.one_hot(target, z_s.shape[-1]).bool()  # (B, K)
    log_b_s, log_b_t = _binary_log_probs(z_s, target_mask), _binary_log_probs(z_t, target_mask)  # (B, 2)
    tckd = F.kl_div(log_b_s, log_b_t, reduction="batchmean", log_target=True)
    log_p_s_other = F.log_softmax(z_s - 1000.0 * target_mask, dim=-1)  # (B, K)
    log_p_t_other = F.log_softmax(z_t - 1000.0 * target_mask, dim=-1)  # (B, K)
    nckd = F.kl_div(log_p_s_other, log_p_t_other, reduction="batchmean", log_target=True)
    return (alpha * tckd + beta * nckd) * (t * t)


def _mean_pearson(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over rows of the Pearson correlation between matching rows of a and b, both (N, M)."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return ((a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + eps)).mean()


def dist(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    beta: float = 1.0,
    gamma: float = 1.0,
) -> torch.Tensor:
    """Huang et al. 2022, NeurIPS, "Knowledge Distillation from A Stronger Teacher" (DIST).

    With p = softmax(z / T): inter = 1 - mean over samples of pearson(p_s[i, :], p_t[i, :]);
    intra = 1 - mean over classes of pearson(p_s[:, k], p_t[:, k]); loss = T^2 * (beta * inter + gamma * intra).
    Matching correlations instead of exact probabilities lets a weaker student follow a much stronger teacher.
    """
    t = temperature
    p_s = F.softmax(student_logits.float() / t, dim=-1)  # (B, K)
    p_t = F.softmax(teacher_logits.detach().float() / t, dim=-1)  # (B, K)
    inter = 1 - _mean_pearson(p_s, p_t)
    intra = 1 - _mean_pearson(p_s.T, p_t.T)
    return (beta * inter + gamma * intra) * (t * t)
