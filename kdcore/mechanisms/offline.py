"""Offline distillation: a frozen, proven teacher teaches the student after its own training."""

from __future__ import annotations

from kdcore.registry import register_mechanism


@register_mechanism("offline")
def offline(study) -> None:
    """Frozen teacher (trained once, reused when identical), then the baseline and the distilled student."""
    cfg = study.cfg
    teacher = study.teacher_role()
    study.train_role("baseline", cfg.student, "none", teacher=teacher)
    study.train_role("student", cfg.student, cfg.distill.method, teacher=teacher)
