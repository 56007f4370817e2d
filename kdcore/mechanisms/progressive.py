"""Progressive distillation (teacher-assistant KD, Mirzadeh et al. 2020): teacher -> assistants -> student.

Each stage is distilled from the one above it, so no model has to decode a teacher far beyond its
capacity. The assistants come from ``distill.assistants`` (``kdx advise`` sizes them), each stage may
have its own temperature, and ``distill.skip_to_teacher`` lets every stage also learn from the
original teacher, which counters the loss of accuracy along a long chain. ``distill.stage_params`` gives
each stage its own method parameters, e.g. next-token and attention terms for the first stage of a
transformer chain and hidden-state terms for the next.

With ``distill.assistant_ensemble`` k > 1, every assistant stage is an ensemble of k models of its
architecture, each from its own initial weights, trained together with the stage's method. The stage
below learns from their mixed softened outputs at its own temperature (response terms) and from each
member's features through its own adapter (feature and relation terms, averaged over the members).
The stage stays one role (``assistant_k``) whose accuracy and predictions are the ensemble's, as it
would be deployed; each member's accuracy is logged on it as ``member_<i>/val_acc`` and ``/test_acc``.
"""

from __future__ import annotations

import inspect
from typing import Any

from kdcore.registry import METHODS, register_mechanism


def check(cfg: Any) -> None:
    """With per-stage params, the method must fit each stage's pair: the stage above and the stage's model."""
    distill = cfg.distill
    method_check = getattr(METHODS.get(distill.method), "check", None)
    if not distill.stage_params or method_check is None:
        return
    default = inspect.signature(method_check).parameters["field"].default
    uppers = [cfg.teacher, *distill.assistants]
    for k, (upper, model, params) in enumerate(zip(uppers, [*distill.assistants, cfg.student], distill.stage_params,
                                                   strict=True)):
        stage = cfg.model_copy(update={"teacher": upper, "student": model,
                                       "distill": distill.model_copy(update={"params": params})})
        method_check(stage, default.replace("distill.params", f"distill.stage_params.{k}"))


@register_mechanism("progressive", fields=("assistants", "stage_temperatures", "stage_params", "skip_to_teacher",
                                           "assistant_ensemble"), check=check)
def progressive(study) -> None:
    """A chain: the teacher teaches assistant_1, each assistant the next, the last one the student."""
    cfg = study.cfg
    teacher = study.teacher_role()
    study.baseline_role(teacher)
    stages = [*(f"assistant_{k}" for k in range(1, len(cfg.distill.assistants) + 1)), "student"]
    models = [*cfg.distill.assistants, cfg.student]
    temperatures = cfg.distill.stage_temperatures or [cfg.distill.temperature] * len(stages)
    params = cfg.distill.stage_params or [None] * len(stages)
    skip = cfg.distill.skip_to_teacher
    upper = teacher
    for role, model, temperature, own in zip(stages, models, temperatures, params, strict=True):
        also = [teacher] if skip and upper is not teacher else []  # the stage above and the teacher count alike
        upper = study.train_role(role, model, cfg.distill.method, teacher=upper, temperature=temperature,
                                 params=own, more_teachers=also,
                                 ensemble=cfg.distill.assistant_ensemble if role != "student" else 1,
                                 extra_tags={"kd.skip_to_teacher": str(skip).lower()})
