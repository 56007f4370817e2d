"""Cross-modal alignment: pull a student's mapped features onto the teacher's, sample by sample.

Two sensors see the same scene through different statistics (RGB and depth), so their features live in
different spaces. An alignment network maps the student's features into the teacher's space, trained on
paired samples; only the direction of each sample's feature (a vector, or a spatial map flattened) is
matched, so the teacher's feature scale (which depends on its architecture and training) does not dominate
the loss (Gupta et al. 2016, "Cross Modal Distillation for Supervision Transfer", use paired images the same
way).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def alignment_loss(mapped: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of 1 - cos(mapped_i, teacher_i): 0 when aligned, 1 when orthogonal, 2 when opposite.

    ``mapped`` is the student feature after the alignment network, ``teacher`` the paired teacher feature;
    both are flattened per sample and the teacher side never trains.
    """
    if mapped.shape != teacher.shape:
        raise ValueError(f"alignment_loss needs equal shapes; mapped {tuple(mapped.shape)} != "
                         f"teacher {tuple(teacher.shape)} (map the student feature first)")
    cosine = F.cosine_similarity(mapped.float().flatten(1), teacher.detach().float().flatten(1), dim=1, eps=1e-8)
    return (1 - cosine).mean()
