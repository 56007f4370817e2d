"""Progressive distillation (teacher-assistant KD, Mirzadeh et al. 2020): teacher -> assistants -> student.

Each stage is distilled from the one above it, so no model has to decode a teacher far beyond its
capacity. The assistants come from ``distill.assistants`` (``kdx advise`` sizes them).
"""

from __future__ import annotations

from kdcore.registry import register_mechanism


@register_mechanism("progressive", assistants=True)
def progressive(study) -> None:
    """A chain: the teacher teaches assistant_1, each assistant the next, the last one the student."""
    cfg = study.cfg
    teacher = study.teacher_role()
    study.train_role("baseline", cfg.student, "none", teacher=teacher)
    stages = [*(f"assistant_{k}" for k in range(1, len(cfg.distill.assistants) + 1)), "student"]
    models = [*cfg.distill.assistants, cfg.student]
    temperatures = cfg.distill.stage_temperatures or [cfg.distill.temperature] * len(stages)
    upper = teacher
    for role, model, temperature in zip(stages, models, temperatures, strict=True):
        upper = study.train_role(role, model, cfg.distill.method, teacher=upper, temperature=temperature)
