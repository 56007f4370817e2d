"""Plain supervised training: how teachers and independent baselines learn."""

from __future__ import annotations

from kdcore import targets
from kdcore.methods.base import Batch, Method, StepOutput
from kdcore.registry import register_method


@register_method("none")
class NoDistillation(Method):
    """Cross-entropy on the labels only; trains the teacher and the independent baseline.

    It smooths the labels by ``label_smoothing``; a study gives the teachers and the baseline settings
    without it (``DistillConfig.for_plain_labels``), so only a student trained this way is smoothed.
    """

    knowledge = "none"
    needs_teacher = False

    def step(self, batch: Batch) -> StepOutput:
        logits = self.student(batch.x).logits
        return StepOutput(logits, {"ce": targets.cross_entropy(logits, batch.y, self.cfg.label_smoothing)})
