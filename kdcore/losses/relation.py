"""Relation-based knowledge: terms over the structure between samples (distances, angles, similarities, attention)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _gram(x: torch.Tensor) -> torch.Tensor:
    """x @ x^T over the last two dims in float32, also inside an autocast region (which would run it in half)."""
    with torch.autocast(x.device.type, enabled=False):
        return x.float() @ x.float().mT  # (..., B, B)


def _pairwise_distances(e: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between the rows of e (B, D) -> (B, B), zero on the diagonal."""
    sq = e.pow(2).sum(-1)  # (B,)
    d2 = (sq[:, None] + sq[None, :] - 2 * _gram(e)).clamp(min=1e-12)  # (B, B)
    return d2.sqrt() * (1 - torch.eye(len(e), device=e.device))


def _normalised_distances(e: torch.Tensor) -> torch.Tensor:
    d = _pairwise_distances(e.flatten(1).float())  # (B, B)
    return d / d[d > 0].mean()


def rkd_distance(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor) -> torch.Tensor:
    """Park et al. 2019, CVPR, "Relational Knowledge Distillation" (RKD-D).

    psi_D(t_i, t_j) = ||t_i - t_j||_2 / mu, with mu the mean distance over the non-zero pairs of the batch;
    loss = Huber (smooth L1, delta 1) between student and teacher psi_D, mean over all B^2 pairs.
    Inputs (B, D); higher-rank features are flattened to (B, -1). Invariant to a uniform scaling of either side.
    """
    return F.smooth_l1_loss(_normalised_distances(student_embedding), _normalised_distances(teacher_embedding.detach()))


def _angles(e: torch.Tensor) -> torch.Tensor:
    """cos of the angle at vertex e_i between e_j and e_k for every triplet: (B, D) -> (B, B, B)."""
    e = e.flatten(1).float()
    diff = F.normalize(e[None, :, :] - e[:, None, :], dim=-1)  # (B, B, D): diff[i, j] = (e_j - e_i) / ||.||
    return _gram(diff)  # (B, B, B)


def rkd_angle(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor) -> torch.Tensor:
    """Park et al. 2019, CVPR, "Relational Knowledge Distillation" (RKD-A).

    psi_A(t_i, t_j, t_k) = <(t_i - t_j) / ||t_i - t_j||, (t_k - t_j) / ||t_k - t_j||>, the cosine of the angle the
    triplet forms; loss = Huber (smooth L1) between student and teacher psi_A, mean over all B^3 triplets.
    Inputs (B, D); higher-rank features are flattened. Memory grows as B^2 * D.
    """
    return F.smooth_l1_loss(_angles(student_embedding), _angles(teacher_embedding.detach()))


def _row_normalised_gram(f: torch.Tensor) -> torch.Tensor:
    return F.normalize(_gram(f.flatten(1)), dim=1)  # (B, B)


def similarity_preserving(student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
    """Tung & Mori 2019, ICCV, "Similarity-Preserving Knowledge Distillation" (SP).

    G = A A^T on features flattened to (B, -1), each row L2-normalised; loss = ||G_s - G_t||_F^2 / B^2
    (one value for the batch, as in the paper). Student and teacher widths may differ.
    """
    g_s, g_t = _row_normalised_gram(student_feature), _row_normalised_gram(teacher_feature.detach())  # (B, B)
    return (g_s - g_t).pow(2).sum() / len(g_s) ** 2


def _conditional_probabilities(e: torch.Tensor, eps: float) -> torch.Tensor:
    e = e.flatten(1).float()
    e = e / (e.norm(dim=1, keepdim=True) + eps)  # (B, D)
    kernel = (_gram(e) + 1) / 2  # (B, B) cosine similarity shifted to [0, 1]
    return kernel / kernel.sum(dim=1, keepdim=True)  # (B, B) row i: p(j | i)


def pkt(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Passalis & Tefas 2018, ECCV, "Learning Deep Representations with Probabilistic Knowledge Transfer" (PKT).

    With the cosine kernel K_ij = (cos(e_i, e_j) + 1) / 2 and p(j | i) = K_ij / sum_j K_ij on each side,
    loss = mean over all B^2 pairs (i, j) of p_t(j | i) log((p_t(j | i) + eps) / (p_s(j | i) + eps)), the
    normalisation of the authors' code (torch.mean, as RepDistiller and mdistiller keep it), so that their weight
    (30000) means the same here: it is the mean over samples of KL(p_t(. | i) || p_s(. | i)) divided by B.
    """
    p_s = _conditional_probabilities(student_embedding, eps)  # (B, B)
    p_t = _conditional_probabilities(teacher_embedding.detach(), eps)  # (B, B)
    return (p_t * torch.log((p_t + eps) / (p_s + eps))).mean()


def _log_mean_over_heads(log_p: torch.Tensor) -> torch.Tensor:
    """log of the head-averaged attention, (B, H, T, T) log-probs -> (B, 1, T, T), computed in log space.

    Keys masked on every head stay -inf; they are filled with 0 around the logsumexp, whose backward would
    otherwise give NaN (-inf - -inf) there.
    """
    masked = log_p.isneginf().all(dim=1, keepdim=True)  # (B, 1, T, T)
    mean = log_p.masked_fill(masked, 0.0).logsumexp(dim=1, keepdim=True) - math.log(log_p.shape[1])
    return mean.masked_fill(masked, float("-inf"))


def _attention_kl(s_logits: torch.Tensor, a_t: torch.Tensor) -> torch.Tensor:
    """KL(a_t || softmax(s_logits)) per attention row, averaged over batch, heads and queries; both (B, H, T, T).

    The student's log-probabilities come from log_softmax of its scores, never from the log of its
    probabilities: a clamp or an underflow there would cap the loss and zero the gradient exactly where the
    student is confident and wrong. Keys the teacher gives no mass (masked, or underflowed) add nothing.
    """
    log_s, a_t = s_logits.float().log_softmax(dim=-1), a_t.detach().float()  # -inf at the student's masked keys
    if log_s.shape[1] != a_t.shape[1]:
        log_s, a_t = _log_mean_over_heads(log_s), a_t.mean(dim=1, keepdim=True)  # (B, 1, T, T)
    if log_s.shape != a_t.shape:
        raise ValueError(
            f"attention_pattern needs matching (B, H, T, T); student {tuple(log_s.shape)}, teacher {tuple(a_t.shape)}"
        )
    kl = torch.where(a_t > 0, a_t * (a_t.log() - log_s), 0.0)  # (B, H, T, T); where, not 0 * -inf = NaN
    return kl.sum(dim=-1).mean()


def attention_pattern(
    student_logits: Sequence[torch.Tensor], teacher_attentions: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Self-attention distribution transfer: Wang et al. 2020, NeurIPS, "MiniLM: Deep Self-Attention Distillation
    for Task-Agnostic Compression of Pre-Trained Transformers".

    ``student_logits`` holds one (B, H, T, T) tensor of pre-softmax attention scores per layer (-inf at masked
    keys, as ``ModelOutput.attention_logits``); ``teacher_attentions`` one (B, H, T, T) attention-probability
    tensor per layer (``ModelOutput.attentions``). The student side is scores so that its log-probabilities are
    exact (log_softmax) however peaked its attention; the teacher is only a target. Student layer i reads teacher
    layer round(i * (Lt - 1) / (Ls - 1)) (rounded half up; a one-layer student reads the teacher's last layer, as
    MiniLM does). Per pair: KL(teacher || student) per row, averaged over batch, heads and queries (heads are
    averaged first, as probabilities, when the counts differ); the loss is the mean over student layers.
    """
    ls, lt = len(student_logits), len(teacher_attentions)
    if ls == 0 or lt == 0:
        raise ValueError(f"attention_pattern needs at least one layer per side; got student {ls}, teacher {lt}")
    mapping = [lt - 1] if ls == 1 else [math.floor(i * (lt - 1) / (ls - 1) + 0.5) for i in range(ls)]
    return torch.stack(
        [_attention_kl(s, teacher_attentions[j]) for s, j in zip(student_logits, mapping, strict=True)]
    ).mean()
