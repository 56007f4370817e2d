"""Cross-modal distillation: a teacher of one sensor teaches a student of another, through paired samples.

The dataset gives both views of every sample (e.g. RGB and depth of one scene, stacked on the channel
axis). The teacher is trained on ``distill.teacher_view``; the student only ever sees
``distill.student_view``. The student's training has two phases in one run:

1. **alignment** (the first ``distill.align_epochs`` epochs): an alignment network maps the student's
   penultimate features into the teacher's feature space, trained with the student's encoder on paired
   samples to minimise :func:`~kdcore.losses.alignment.alignment_loss`;
2. **distillation**: the method's response terms on the logits of each pair, the alignment loss kept as the
   feature-based term (weighted by alpha), and (1 - alpha) cross-entropy on the labels (alpha 1 = the
   student's modality has no labels, the usual cross-modal case).

``distill.align: false`` skips the alignment, and with it the pairing: each student sample is matched with
the teacher's outputs on another sample of the training set, as when the two sensors were recorded
separately. With no labels of its own, such a student stays near chance, which is what the
cross-modal failure detector looks for. The baseline is the student's architecture trained on its own view
with labels: what a labelled student-modality dataset would give.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kdcore import targets
from kdcore.losses.alignment import alignment_loss
from kdcore.losses.feature import make_adapter
from kdcore.methods.base import Batch, Method, StepOutput, TeacherSource
from kdcore.methods.terms import TermSpec, response_losses, response_specs
from kdcore.registry import DATASETS, register_mechanism

FEATURE = "penultimate"  # the features that are aligned
TRANSFER = "the cross_modal mechanism transfers logits, and aligns features itself"
UNPAIRED_SEED = 7919  # the fixed mismatching of samples when alignment (and pairing) is skipped


class CrossModalDistillation(Method):
    """The student on its own view: alignment first, then response terms plus the alignment term.

    ``partners`` maps each training index to the index whose teacher outputs it learns from: itself when
    paired, a fixed permutation when not.
    """

    knowledge = "feature"

    def __init__(self, student: nn.Module, teacher: TeacherSource, cfg: Any, specs: list[TermSpec],
                 example: torch.Tensor, train_x: torch.Tensor) -> None:
        super().__init__(student, teacher, cfg)
        self.specs = specs
        self.align_epochs = cfg.align_epochs if cfg.align else 0
        self.aligning = False
        self.aligner: nn.Module | None = None
        if cfg.align:
            with torch.no_grad():
                was = student.training
                s_shape = tuple(student.eval()(example).features[FEATURE].shape[1:])
                student.train(was)
                t_device = next(teacher.model.parameters()).device
                t_shape = tuple(teacher.model(example.to(t_device)).features[FEATURE].shape[1:])
            self.aligner = make_adapter(s_shape, t_shape)
        n = len(train_x)
        order = torch.arange(n) if cfg.align else _derangement(n, UNPAIRED_SEED)
        self.register_buffer("partners", order, persistent=False)
        self.register_buffer("train_x", train_x, persistent=False)  # the partners' inputs, for a live teacher

    def begin_epoch(self, epoch: int) -> None:
        self.aligning = epoch < self.align_epochs

    def teacher_keys(self, source: int = 0) -> set[str]:
        return {"logits", FEATURE} if self.aligner is not None else {"logits"}

    def step(self, batch: Batch) -> StepOutput:
        assert self.teacher is not None
        out = self.student(batch.x)
        index = self.partners[batch.index]
        partner = Batch(self.train_x[index], batch.y, index)
        teacher = self.teacher.outputs(partner, self.teacher_keys())
        losses: dict[str, torch.Tensor] = {}
        if self.aligner is not None:
            align = alignment_loss(self.aligner(out.features[FEATURE]), teacher[FEATURE])
            losses["align"] = align if self.aligning else self.cfg.alpha * align
        if not self.aligning:
            losses["ce"] = (1 - self.cfg.alpha) * targets.cross_entropy(out.logits, batch.y)
            losses |= response_losses(self.specs, out.logits, [teacher["logits"]], batch, self.cfg)
        return StepOutput(out.logits, losses)


def _derangement(n: int, seed: int) -> torch.Tensor:
    """A seeded permutation that moves every index (a cyclic shift of a random order)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    shifted = torch.empty_like(order)
    shifted[order] = order.roll(1)
    return shifted


def views(cfg: Any) -> tuple[str, str]:
    """The teacher's and the student's view: as configured, else the dataset's first and last."""
    names = list(DATASETS.entry(cfg.data.name).meta.get("views", {}))
    return cfg.distill.teacher_view or names[0], cfg.distill.student_view or names[-1]


def check(cfg: Any) -> None:
    """The dataset must pair views, the two views must differ, and the method must work on logits."""
    meta = DATASETS.entry(cfg.data.name).meta
    paired = [entry.name for entry in DATASETS if entry.meta.get("views")]
    if not meta.get("views"):
        raise ValueError(f"data.name: the cross_modal mechanism needs paired views of each sample; dataset "
                         f"{cfg.data.name} has one; allowed: {', '.join(paired)}")
    names = list(meta["views"])
    for side in ("teacher_view", "student_view"):
        value = getattr(cfg.distill, side)
        if value is not None and value not in names:
            raise ValueError(f"distill.{side}: {cfg.data.name} has no view {value!r}; allowed: {', '.join(names)}")
    teacher_view, student_view = views(cfg)
    if teacher_view == student_view:
        raise ValueError(f"distill.student_view: the student must see another view than the teacher "
                         f"({teacher_view}); allowed: {', '.join(n for n in names if n != teacher_view)}")
    response_specs(cfg, TRANSFER)
    if cfg.distill.align and cfg.distill.align_epochs >= cfg.train.epochs:
        raise ValueError(f"distill.align_epochs: alignment takes the first epochs of the student's "
                         f"{cfg.train.epochs}; allowed: 1 to {cfg.train.epochs - 1}")


@register_mechanism("cross_modal", fields=("teacher_view", "student_view", "align", "align_epochs"), check=check)
def cross_modal(study) -> None:
    """Teacher on one view, baseline and student on the other; the student learns through aligned pairs."""
    cfg = study.cfg
    teacher_view, student_view = views(cfg)
    teacher = study.teacher_role(view=teacher_view)
    study.train_role("baseline", cfg.student, "none", teacher=teacher, view=student_view)
    specs = response_specs(cfg, TRANSFER)
    splits = study.splits

    def make(built: dict[str, nn.Module]) -> Method:
        source = TeacherSource(teacher.model)
        distiller = CrossModalDistillation(built["student"], source, cfg.distill, specs,
                                           splits.train.x[:8], splits.train.x)
        if splits.deterministic:
            source.cache = study.teacher_cache(source, distiller.teacher_keys())
        return distiller

    tags = {"kd.view": student_view, "kd.teacher_view": teacher_view, "kd.align": str(cfg.distill.align).lower(),
            "kd.temperature": f"{cfg.distill.temperature:g}"}
    study.train_models({"student": study.builder(cfg.student, student_view)}, make, cfg.distill.method, tags,
                       teacher=teacher)
