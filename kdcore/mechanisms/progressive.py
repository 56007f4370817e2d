"""Progressive distillation (teacher-assistant KD, Mirzadeh et al. 2020): teacher -> assistants -> student.

Each stage is distilled from the one above it, so no model has to decode a teacher far beyond its
capacity. The assistants come from ``distill.assistants`` (``kdx advise`` sizes them), each stage may
have its own temperature, and ``distill.skip_to_teacher`` lets every stage also learn from the
original teacher, which counters the loss of accuracy along a long chain.
"""

from __future__ import annotations

from kdcore.registry import register_mechanism


@register_mechanism("progressive", fields=("assistants", "stage_temperatures", "skip_to_teacher"))
def progressive(study) -> None:
    """A chain: the teacher teaches assistant_1, each assistant the next, the last one the student."""
    cfg = study.cfg
    teacher = study.teacher_role()
    study.train_role("baseline", cfg.student, "none", teacher=teacher)
    stages = [*(f"assistant_{k}" for k in range(1, len(cfg.distill.assistants) + 1)), "student"]
    models = [*cfg.distill.assistants, cfg.student]
    temperatures = cfg.distill.stage_temperatures or [cfg.distill.temperature] * len(stages)
    skip = cfg.distill.skip_to_teacher
    upper = teacher
    for role, model, temperature in zip(stages, models, temperatures, strict=True):
        also = [teacher] if skip and upper is not teacher else []
        upper = study.train_role(role, model, cfg.distill.method, teacher=upper, temperature=temperature,
                                 more_teachers=also, extra_tags={"kd.skip_to_teacher": str(skip).lower()})
