"""Cross-modal distillation: a teacher of one sensor teaches a student of another, through paired samples.

The dataset gives both views of every sample (e.g. RGB and depth of one scene, stacked on the channel
axis). The teacher is trained on ``distill.teacher_view``; the student only ever sees
``distill.student_view``. The student's training has two phases in one run:

1. **alignment** (the first ``distill.align_epochs`` epochs): an alignment network maps the student's
   features into the teacher's feature space, trained with the student's encoder on paired samples to
   minimise :func:`~kdcore.losses.alignment.alignment_loss`. It maps the penultimate features, plus every
   other (student feature, teacher feature) pair a feature or relation term reads, one small network per
   pair (:func:`~kdcore.losses.feature.make_adapter`); the alignment loss is the mean over the pairs;
2. **distillation**: the method's terms, alpha-weighted, plus the alignment loss (weighted by alpha) and
   (1 - alpha) cross-entropy on the labels with ``distill.label_smoothing`` (alpha 1 = the student's
   modality has no labels, the usual cross-modal case). Response terms compare the logits of each pair.
   Feature terms compare the student's aligned features with the teacher's on the paired sample: ``hint``
   by MSE, ``at`` by the attention maps of the aligned spatial maps (the alignment network maps a
   (C, H, W) block onto the teacher's channels and size, so ``at`` reads blocks, e.g. ``student_layer:
   last``). Relation terms (``rkd_distance``, ``rkd_angle``, ``sp``, ``pkt``) compare the relations among the
   batch's aligned student features with those among the teacher's features of the paired samples.
   ``attention_pattern`` is refused: it reads transformer attention maps, which nothing here aligns.

``distill.align: false`` skips the alignment, and with it the pairing: each student sample is matched with
the teacher's outputs on another sample of the training set, as when the two sensors were recorded
separately. Feature and relation terms still run, through the same per-pair networks, now plain learned
adapters with no alignment phase and no alignment loss, fitted to the teacher's features of the mismatched
samples: the same method as the aligned study, so the pair of studies isolates what alignment and pairing
bring. With no labels of its own, such a student stays near chance, which is what the cross-modal failure
detector looks for. The baseline is the student's architecture trained on its own view with labels: what a
labelled student-modality dataset would give.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kdcore import targets
from kdcore.losses.alignment import alignment_loss
from kdcore.losses.feature import make_adapter
from kdcore.methods.base import Batch, Method, StepOutput, TeacherSource
from kdcore.methods.terms import ATTENTIONS, LOGITS, TERMS, TermSpec, feature_shapes, resolve_layer, response_losses
from kdcore.registry import DATASETS, METHODS, data_meta, register_mechanism

FEATURE = "penultimate"  # the features the alignment phase always aligns
UNPAIRED_SEED = 7919  # the fixed mismatching of samples when alignment (and pairing) is skipped
TRANSFERABLE = [name for name, term in TERMS.items() if term.reads != ATTENTIONS]  # terms this mechanism runs

Pair = tuple[str, str]  # (student feature, teacher feature) that one alignment network maps between


class CrossModalDistillation(Method):
    """The student on its own view: alignment first, then the method's terms plus the alignment term.

    ``partners`` maps each training index to the index whose teacher outputs it learns from: itself when
    paired, a fixed permutation when not. ``maps`` holds one alignment network per feature pair, keyed
    ``student>teacher``; ``links`` says which pair each term reads (None for response terms).
    ``train_x`` stays where the dataset keeps it (the CPU): the partners' inputs are gathered from it only when
    the teacher runs live, so the device holds the training set once, the engine's copy.
    """

    knowledge = "feature"

    def __init__(self, student: nn.Module, teacher: TeacherSource, cfg: Any, specs: list[TermSpec],
                 example: torch.Tensor, train_x: torch.Tensor) -> None:
        super().__init__(student, teacher, cfg)
        refused = [spec.term for spec in specs if spec.term not in TRANSFERABLE]
        if refused:
            raise ValueError(f"the cross_modal mechanism cannot run term {refused[0]} (it reads attention maps, "
                             f"which are not aligned); allowed: {', '.join(TRANSFERABLE)}")
        self.specs = specs
        self.response = [spec for spec in specs if TERMS[spec.term].reads == LOGITS]
        self.align_epochs = cfg.align_epochs if cfg.align else 0
        self.aligning = False
        s_shapes = _shapes(student, example)
        t_shapes = _shapes(teacher.model, example)
        self.links: list[Pair | None] = [
            None if TERMS[spec.term].reads == LOGITS
            else (resolve_layer(spec.student_layer, s_shapes), resolve_layer(spec.teacher, t_shapes))
            for spec in specs]
        self.pairs: list[Pair] = list(dict.fromkeys(
            ([(FEATURE, FEATURE)] if cfg.align else []) + [link for link in self.links if link is not None]))
        self.maps = nn.ModuleDict({_key(pair): make_adapter(s_shapes[pair[0]], t_shapes[pair[1]])
                                   for pair in self.pairs})
        n = len(train_x)
        order = torch.arange(n) if cfg.align else _derangement(n, UNPAIRED_SEED)
        self.register_buffer("partners", order, persistent=False)
        self.host_partners = order  # the same on the CPU, for a cache kept in CPU memory
        self.train_x = train_x  # the partners' inputs, for a live teacher; not a buffer: never moved to the device

    def begin_epoch(self, epoch: int) -> None:
        self.aligning = epoch < self.align_epochs

    def teacher_keys(self, source: int = 0) -> set[str]:
        return {LOGITS} | {teacher for _, teacher in self.pairs}

    def step(self, batch: Batch) -> StepOutput:
        assert self.teacher is not None
        out = self.student(batch.x)
        keys = self.teacher_keys()
        teacher = self.teacher.outputs(self.partner_batch(batch, keys), keys)
        mapped = {pair: self.maps[_key(pair)](out.features[pair[0]]) for pair in self.pairs}  # teacher's shapes
        losses: dict[str, torch.Tensor] = {}
        if self.cfg.align:
            align = torch.stack([alignment_loss(mapped[pair], teacher[pair[1]]) for pair in self.pairs]).mean()
            losses["align"] = align if self.aligning else self.cfg.alpha * align
        if not self.aligning:
            losses["ce"] = (1 - self.cfg.alpha) * targets.cross_entropy(out.logits, batch.y,
                                                                        smoothing=self.cfg.label_smoothing)
            losses |= response_losses(self.response, out.logits, [teacher[LOGITS]], batch, self.cfg)
            losses |= self.feature_losses(mapped, teacher, batch)
        return StepOutput(out.logits, losses)

    def partner_batch(self, batch: Batch, keys: set[str]) -> Batch:
        """The partners of ``batch``'s samples: their positions, and their inputs only when the teacher runs live
        (a cache reads positions alone; an empty batch of inputs stands in)."""
        index = self.partners[batch.index]
        host = None if batch.host_index is None else self.host_partners[batch.host_index]
        if self.teacher is not None and self.teacher.serves(keys):
            return Batch(batch.x[:0], batch.y, index, host)
        rows = host if host is not None else index.cpu()
        return Batch(self.train_x[rows].to(batch.x.device), batch.y, index, host)

    def feature_losses(self, mapped: dict[Pair, torch.Tensor], teacher: dict[str, Any],
                       batch: Batch) -> dict[str, torch.Tensor]:
        """Each feature or relation term on the aligned student feature and the partner's teacher feature,
        alpha- and weight-scaled; a repeated term is named ``<term>_<position>``."""
        losses: dict[str, torch.Tensor] = {}
        for i, (spec, link) in enumerate(zip(self.specs, self.links, strict=True)):
            if link is None:
                continue
            name = spec.term if spec.term not in losses else f"{spec.term}_{i}"
            value = TERMS[spec.term].fn(mapped[link], teacher[link[1]], batch, self.cfg)
            losses[name] = self.cfg.alpha * spec.weight * value
        return losses


def _shapes(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The model's feature shapes (without batch) on ``example``, from one eval-mode pass on its device."""
    was = model.training
    with torch.no_grad():
        device = next(model.parameters()).device
        features = model.eval()(example.to(device)).features
    model.train(was)
    return {name: tuple(value.shape[1:]) for name, value in features.items()}


def _key(pair: Pair) -> str:
    return f"{pair[0]}>{pair[1]}"  # a ModuleDict key cannot hold a dot


def _derangement(n: int, seed: int) -> torch.Tensor:
    """A seeded permutation that moves every index (a cyclic shift of a random order)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    shifted = torch.empty_like(order)
    shifted[order] = order.roll(1)
    return shifted


def views(cfg: Any) -> tuple[str, str]:
    """The teacher's and the student's view: as configured, else the dataset's first and last."""
    names = list(data_meta(cfg.data).get("views", {}))
    return cfg.distill.teacher_view or names[0], cfg.distill.student_view or names[-1]


def check(cfg: Any) -> None:
    """The dataset must pair views, the two views must differ, and the method's terms must be alignable."""
    meta = data_meta(cfg.data)
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
    transfer_specs(cfg)
    if cfg.distill.align and cfg.distill.align_epochs >= cfg.train.epochs:
        raise ValueError(f"distill.align_epochs: alignment takes the first epochs of the student's "
                         f"{cfg.train.epochs}; allowed: 1 to {cfg.train.epochs - 1}")


def transfer_specs(cfg: Any) -> list[TermSpec]:
    """The config method's weighted terms, when this mechanism can run every one; else a one-line ValueError
    naming ``distill.params.terms.<i>`` (multi) or ``distill.method``.

    A method needs terms (without any, e.g. ``none``, the teacher would teach nothing); no term may read
    attention maps; a feature or relation term's two features must have the same rank, since an alignment
    network maps the student's onto the teacher's (vector onto vector, map onto map).
    """
    cls = METHODS.get(cfg.distill.method)
    params = cls.Params.model_validate(cfg.distill.params) if hasattr(cls, "Params") else None
    specs: list[TermSpec] = cls.specs(params) if hasattr(cls, "specs") else []
    if not specs:
        usable = [entry.name for entry in METHODS if hasattr(entry.obj, "specs")]
        raise ValueError(f"distill.method: the cross_modal mechanism transfers loss terms, and method "
                         f"{cfg.distill.method} has no terms; allowed: {', '.join(usable)}")
    listed = params is not None and "terms" in type(params).model_fields  # multi: name the term's position
    for i, spec in enumerate(specs):
        field = f"distill.params.terms.{i}" if listed else "distill.method"
        reads = TERMS[spec.term].reads
        if reads == ATTENTIONS:
            raise ValueError(f"{field}: term {spec.term} reads attention maps, which the cross_modal mechanism "
                             f"does not align; allowed terms: {', '.join(TRANSFERABLE)}")
        if reads != LOGITS:
            _check_ranks(spec, cfg, field)
    return specs


def _check_ranks(spec: TermSpec, cfg: Any, field: str) -> None:
    """The student and teacher features a term reads must have the same rank (one network maps between them)."""
    found = []
    for model, layer in ((cfg.student, spec.student_layer), (cfg.teacher, spec.teacher)):
        shapes = feature_shapes(model, cfg.data)
        name = resolve_layer(layer, shapes)
        found.append((name, shapes[name]))
    (s_name, s_shape), (t_name, t_shape) = found
    if len(s_shape) != len(t_shape):
        raise ValueError(f"{field}: term {spec.term} reads the student's {s_name} {s_shape} through an alignment "
                         f"network onto the teacher's {t_name} {t_shape}, which cannot change the rank; read "
                         "penultimate on both sides, or blocks on both")


@register_mechanism("cross_modal", fields=("teacher_view", "student_view", "align", "align_epochs"), check=check)
def cross_modal(study) -> None:
    """Teacher on one view, baseline and student on the other; the student learns through aligned pairs."""
    cfg = study.cfg
    teacher_view, student_view = views(cfg)
    teacher = study.teacher_role(view=teacher_view)
    study.baseline_role(teacher, view=student_view)
    specs = transfer_specs(cfg)
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
