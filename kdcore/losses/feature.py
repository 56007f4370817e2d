"""Feature-based knowledge: terms over intermediate representations, plus the adapter that aligns them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def hint_mse(student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
    """Romero et al. 2015, ICLR, "FitNets: Hints for Thin Deep Nets".

    Hint loss = mean over all elements of (adapter(f_s) - f_t)^2; the caller passes the already adapted student
    feature (see `make_adapter`), so the shapes must match exactly.
    """
    if student_feature.shape != teacher_feature.shape:
        raise ValueError(
            f"hint_mse needs equal shapes; student {tuple(student_feature.shape)} != "
            f"teacher {tuple(teacher_feature.shape)} (adapt the student feature with make_adapter)"
        )
    return F.mse_loss(student_feature.float(), teacher_feature.detach().float())


def make_adapter(student_shape: tuple[int, ...], teacher_shape: tuple[int, ...]) -> nn.Module:
    """The FitNets regressor mapping a student feature of `student_shape` to `teacher_shape` (both without batch).

    Identity when equal; (C, H, W) -> 1x1 Conv2d + BatchNorm2d, and (C, L) -> 1x1 Conv1d + BatchNorm1d, after an
    adaptive average pool to the teacher's spatial size when it differs; (C,) -> Linear. The method owns the adapter:
    its parameters are trained with the student and are not part of the deployed student.
    """
    student_shape, teacher_shape = tuple(student_shape), tuple(teacher_shape)
    if student_shape == teacher_shape:
        return nn.Identity()
    if len(student_shape) != len(teacher_shape) or len(student_shape) not in (1, 2, 3):
        raise ValueError(
            f"make_adapter needs shapes of the same rank, (C,), (C, L) or (C, H, W); "
            f"got student {student_shape} and teacher {teacher_shape}"
        )
    c_s, c_t = student_shape[0], teacher_shape[0]
    if len(student_shape) == 1:
        return nn.Linear(c_s, c_t)
    pool, conv, norm = {
        2: (nn.AdaptiveAvgPool1d, nn.Conv1d, nn.BatchNorm1d),
        3: (nn.AdaptiveAvgPool2d, nn.Conv2d, nn.BatchNorm2d),
    }[len(student_shape)]
    layers = [pool(teacher_shape[1:])] if student_shape[1:] != teacher_shape[1:] else []
    return nn.Sequential(*layers, conv(c_s, c_t, kernel_size=1, bias=False), norm(c_t))


def attention_map(feature: torch.Tensor, p: int = 2) -> torch.Tensor:
    """Zagoruyko & Komodakis 2017, ICLR, "Paying More Attention to Attention".

    Q = sum over channels of |A|^p, flattened and L2-normalised per sample: (B, C, H, W) -> (B, H*W),
    (B, C, L) -> (B, L). The reference code takes the channel mean; the normalisation makes the two identical.
    """
    if feature.dim() < 3:
        raise ValueError(
            f"attention transfer needs spatial features (B, C, H, W) or (B, C, L); got {tuple(feature.shape)}"
        )
    q = feature.float().abs().pow(p).sum(dim=1)  # (B, H, W) or (B, L)
    return F.normalize(q.flatten(1), dim=1)  # (B, H*W) or (B, L)


def attention_transfer(student_feature: torch.Tensor, teacher_feature: torch.Tensor, p: int = 2) -> torch.Tensor:
    """Zagoruyko & Komodakis 2017, ICLR, "Paying More Attention to Attention" (AT).

    As in the reference code: mean over batch and positions of (Q_s/||Q_s|| - Q_t/||Q_t||)^2, i.e. the paper's
    squared L2 distance between normalised maps divided by the number of positions (beta/2 is left to the method's
    weight). Channel counts may differ; when spatial sizes differ both features are average-pooled to the smaller.
    """
    if student_feature.dim() != teacher_feature.dim():
        raise ValueError(
            f"attention_transfer needs features of the same rank; got student {tuple(student_feature.shape)} "
            f"and teacher {tuple(teacher_feature.shape)}"
        )
    size = tuple(min(s, t) for s, t in zip(student_feature.shape[2:], teacher_feature.shape[2:], strict=True))
    q_s = attention_map(_pool_to(student_feature, size), p)  # (B, N)
    q_t = attention_map(_pool_to(teacher_feature.detach(), size), p)  # (B, N)
    return (q_s - q_t).pow(2).mean()


def _pool_to(feature: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Adaptive average pool a (B, C, H, W) or (B, C, L) feature to spatial `size`; unchanged when already there."""
    if tuple(feature.shape[2:]) == size:
        return feature
    pool = F.adaptive_avg_pool2d if len(size) == 2 else F.adaptive_avg_pool1d
    return pool(feature.float(), size)
