"""Offline distillation: a frozen, proven teacher teaches the student after its own training.

With ``distill.teachers`` several diverse teachers teach together (a fix for an overconfident
student): each is its own role (``teacher_2``, ...), trained with its own seed or reused like the
teacher, and the student learns from their combination weighted by ``distill.teacher_weights``.
"""

from __future__ import annotations

from typing import Any

from kdcore.registry import METHODS, register_mechanism


def check(cfg: Any) -> None:
    """Several teachers need a method that learns from several, and the method's terms must fit each of them."""
    distill = cfg.distill
    if not (distill.teachers or distill.teacher_weights):
        return
    cls = METHODS.get(distill.method)
    if not (cls.needs_teacher and cls.many_teachers):
        usable = [e.name for e in METHODS if e.obj.needs_teacher and e.obj.many_teachers]
        field = "teachers" if distill.teachers else "teacher_weights"
        raise ValueError(f"distill.{field}: method {distill.method} cannot learn from several teachers; "
                         f"allowed: {', '.join(usable)}")
    method_check = getattr(cls, "check", None)
    for i, model in enumerate(distill.teachers if method_check is not None else ()):
        try:
            method_check(cfg.model_copy(update={"teacher": model}))
        except ValueError as err:
            field, _, problem = str(err).partition(": ")
            raise ValueError(f"distill.teachers.{i}: {problem} (read by {field})") from None


@register_mechanism("offline", fields=("teachers", "teacher_weights"), check=check)
def offline(study) -> None:
    """Frozen teacher(s) (trained once, reused when identical), then the baseline and the distilled student."""
    cfg = study.cfg
    teacher = study.teacher_role()
    extra = [study.teacher_role(k=k) for k in range(2, len(cfg.distill.teachers) + 2)]
    study.baseline_role(teacher)
    study.train_role("student", cfg.student, cfg.distill.method, teacher=teacher, more_teachers=extra,
                     weights=cfg.distill.teacher_weights)
