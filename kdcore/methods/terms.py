"""Loss terms as methods use them: what each term reads from student and teacher, and how it is fed.

A method is a weighted list of :class:`TermSpec` (term name, weight, the feature each side reads).
:class:`TermMethod` turns that list into the losses of one step, owns the adapters that map a
student feature onto the teacher's shape, and says which teacher outputs it needs (so the study can
cache them). Every method in ``kdcore/methods`` is a thin subclass that only chooses its terms, and
``multi`` takes the list from the config: multi-level distillation.

How a step weighs its losses (:meth:`TermMethod.step`), as the reference implementations do (mdistiller's
distillers, RepDistiller's ``train_student.py``):

* a response term (one that reads logits: kd, dkd_*, dist_*) is ``alpha * weight * term``, and cross-entropy
  then weighs ``1 - alpha``: alpha is Hinton's balance between the teacher's soft targets and the labels;
* a feature or relation term is ``weight * term``, alpha not applied, and when the method has no response term
  cross-entropy keeps weight 1 (the method's ``ce_weight`` where it has one), as mdistiller's ``CE_WEIGHT: 1.0``
  and RepDistiller's ``-r 1 -a 0 -b <beta>`` for every feature and relation method. Their weights (FitNet 100,
  AT 1000, SP 3000, PKT 30000, ...) only mean this beside a cross-entropy of weight 1.
"""

from __future__ import annotations

import functools
import re
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from kdcore import targets
from kdcore.losses import feature, relation, response
from kdcore.methods.base import Batch, Method, StepOutput, TeacherSource
from kdcore.models.base import ModelOutput
from kdcore.registry import MODELS, data_meta

LOGITS = "logits"
ATTENTIONS = "attentions"
LAYER = re.compile(r"^(penultimate|last|block[1-9][0-9]*)$")


@dataclass(frozen=True)
class Term:
    """One loss term: its knowledge type, what it reads, and the function of (student, teacher, batch, cfg)."""

    knowledge: str  # response | feature | relation
    reads: str  # logits | feature | attentions
    fn: Callable[[Any, Any, Batch, Any], torch.Tensor]
    spatial: bool = False  # needs (B, C, ...) maps, not vectors
    adapted: bool = False  # the student feature goes through an adapter to the teacher's shape


TERMS: dict[str, Term] = {
    "kd": Term("response", LOGITS, lambda s, t, b, c: response.kd_kl(s, t, c.temperature)),
    "dkd_target": Term("response", LOGITS, lambda s, t, b, c: response.dkd(s, t, b.y, c.temperature, 1.0, 0.0)),
    "dkd_nontarget": Term("response", LOGITS,
                          lambda s, t, b, c: response.dkd(s, t, b.y, c.temperature, 0.0, 1.0)),
    "dist_inter": Term("response", LOGITS, lambda s, t, b, c: response.dist(s, t, c.temperature, 1.0, 0.0)),
    "dist_intra": Term("response", LOGITS, lambda s, t, b, c: response.dist(s, t, c.temperature, 0.0, 1.0)),
    "hint": Term("feature", "feature", lambda s, t, b, c: feature.hint_mse(s, t), adapted=True),
    "at": Term("feature", "feature", lambda s, t, b, c: feature.attention_transfer(s, t), spatial=True),
    "rkd_distance": Term("relation", "feature", lambda s, t, b, c: relation.rkd_distance(s, t)),
    "rkd_angle": Term("relation", "feature", lambda s, t, b, c: relation.rkd_angle(s, t)),
    "sp": Term("relation", "feature", lambda s, t, b, c: relation.similarity_preserving(s, t)),
    "pkt": Term("relation", "feature", lambda s, t, b, c: relation.pkt(s, t)),
    "attention_pattern": Term("relation", ATTENTIONS, lambda s, t, b, c: relation.attention_pattern(s, t)),
}


def ce_weight_field() -> Any:
    """The ``ce_weight`` parameter of a feature or relation method: cross-entropy's weight, 1 as in the
    reference code (mdistiller ``<METHOD>.LOSS.CE_WEIGHT``, RepDistiller ``-r``)."""
    return Field(1.0, ge=0, description="Weight of cross-entropy on the labels (1 as in the reference code; "
                                        "alpha does not apply to this method).")


class TermSpec(BaseModel):
    """One weighted term of a method, with the feature each side reads (for feature and relation terms)."""

    model_config = ConfigDict(extra="forbid")

    term: str = Field(description="Loss term: " + ", ".join(TERMS))
    weight: float = Field(1.0, ge=0, description="Multiplies the term; a response term (on logits) is also "
                                                 "scaled by alpha, a feature or relation term is not.")
    student_layer: str = Field("penultimate", description="Student feature: penultimate, last or blockN.")
    teacher_layer: str | None = Field(None, description="Teacher feature; empty = the same name as the student's.")

    @field_validator("term")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in TERMS:
            raise ValueError(f"unknown term {value!r}; allowed: {', '.join(TERMS)}")
        return value

    @field_validator("student_layer", "teacher_layer")
    @classmethod
    def _layer(cls, value: str | None) -> str | None:
        if value is not None and not LAYER.match(value):
            raise ValueError(f"{value!r} is not a feature name; allowed: penultimate, last, block1, block2, ...")
        return value

    @property
    def teacher(self) -> str:
        return self.teacher_layer or self.student_layer


def resolve_layer(name: str, features: dict[str, Any]) -> str:
    """``last`` is the deepest ``blockN`` the model returns; other names are taken as they are."""
    if name != "last":
        return name
    blocks = sorted((k for k in features if k.startswith("block")), key=lambda k: int(k[5:]))
    return blocks[-1] if blocks else "penultimate"


def feature_shapes(model: Any, data: Any, role: str = "model") -> dict[str, tuple[int, ...]]:
    """Names and shapes (without batch) of a model's features on a dataset's inputs, from one forward pass;
    ``model`` is a ``ModelConfig`` or its fields as a mapping, ``data`` a dataset name or a data config. A
    model from outside (a module to import, a checkpoint) that cannot be built is a ValueError naming
    ``role``'s field."""
    from kdcore.config import ModelConfig
    from kdcore.models.base import ModelSourceError

    spec = model if isinstance(model, ModelConfig) else ModelConfig.model_validate(dict(model))
    data_json = data if isinstance(data, str) else data.model_dump_json()
    try:
        return _feature_shapes(spec.model_dump_json(), data_json)
    except ModelSourceError as err:
        raise ValueError(f"{role}.{err.field}: {err}") from None


@functools.lru_cache(maxsize=64)
def _feature_shapes(spec_json: str, data_json: str) -> dict[str, tuple[int, ...]]:
    from kdcore.config import DataConfig, ModelConfig
    from kdcore.models.base import build_model, probe_inputs

    data = data_json if not data_json.startswith("{") else DataConfig.model_validate_json(data_json)
    meta = data_meta(data)
    net = build_model(ModelConfig.model_validate_json(spec_json), meta["input_shape"], meta["num_classes"]).eval()
    with torch.no_grad():
        out = net(probe_inputs(meta))
    shapes = {name: tuple(value.shape[1:]) for name, value in out.features.items()}
    if out.attentions:
        shapes[ATTENTIONS] = tuple(out.attentions[0].shape[1:])
    return shapes


def check_terms(specs: list[TermSpec], cfg: Any, where: str) -> None:
    """Raise a one-line ValueError when a term cannot work on the config's teacher and student."""
    for i, spec in enumerate(specs):
        term = TERMS[spec.term]
        if term.reads == LOGITS:
            continue
        field = f"{where}.{i}" if where.endswith("terms") else where  # multi names the term; others the method
        found: dict[str, tuple[str, tuple[int, ...]]] = {}
        for role, layer in (("student", spec.student_layer), ("teacher", spec.teacher)):
            model = getattr(cfg, role)
            shapes = feature_shapes(model, cfg.data, role)
            if term.reads == ATTENTIONS:
                if ATTENTIONS not in shapes:
                    raise ValueError(f"{field}: term {spec.term} needs attention maps; {role} model {model.name} "
                                     "returns none (use a model that exposes attentions)")
                continue
            name = resolve_layer(layer, shapes)
            if name not in shapes:
                raise ValueError(f"{field}: {role} model {model.name} has no feature {layer!r}; available: "
                                 f"{', '.join(['last', *shapes])}")
            found[role] = (name, shapes[name])
            if term.spatial and len(shapes[name]) < 2:
                spatial = [e.name for e in MODELS if e.meta.get("spatial")]
                raise ValueError(f"{field}: term {spec.term} needs spatial features, but {role} model {model.name} "
                                 f"gives {name} of shape {shapes[name]}; models with spatial features: "
                                 f"{', '.join(spatial)}")
        if term.adapted and len(found.get("student", ("", ()))[1]) != len(found.get("teacher", ("", ()))[1]):
            (s_name, s_shape), (t_name, t_shape) = found["student"], found["teacher"]
            raise ValueError(f"{field}: term {spec.term} maps the student's {s_name} {s_shape} onto the teacher's "
                             f"{t_name} {t_shape}, and an adapter cannot change the rank; read penultimate on both "
                             "sides, or features of the same rank")


class TermMethod(Method):
    """A method made of weighted terms; subclasses say which in :meth:`terms`."""

    knowledge: ClassVar[str] = "response"

    @classmethod
    def check(cls, cfg: Any, field: str = "distill.method") -> None:
        """Config-time check that every term fits the config's models (ValueError naming the field)."""
        params = cls.Params.model_validate(cfg.distill.params) if hasattr(cls, "Params") else None
        check_terms(cls.specs(params), cfg, field)

    @classmethod
    @abstractmethod
    def specs(cls, params: Any) -> list[TermSpec]:
        """The weighted terms for validated ``params`` (a classmethod, so configs are checked before training)."""

    many_teachers: ClassVar[bool] = True

    # Multiplies the response terms (not cross-entropy, not feature or relation terms); a method with a warm-up
    # (dkd) sets it in :meth:`begin_epoch`.
    response_scale: float = 1.0

    def __init__(self, student: nn.Module, teacher: TeacherSource | None, cfg: Any,
                 example: torch.Tensor | None = None, more_teachers: Sequence[TeacherSource] = (),
                 weights: Sequence[float] | None = None) -> None:
        super().__init__(student, teacher, cfg, example, more_teachers, weights)
        self.params = self.Params.model_validate(cfg.params) if hasattr(self, "Params") else None
        self.spec_list = self.specs(self.params)
        self.adapters = nn.ModuleDict()  # "i" for term i on the teacher; "i@k" on more_teachers[k - 1]
        self.layers: list[list[tuple[str, str]]] = []  # per teacher source: resolved (student, teacher) per term
        needs_features = any(TERMS[s.term].reads != LOGITS for s in self.spec_list)
        s_features: dict[str, torch.Tensor] = {}
        if needs_features:
            if example is None or teacher is None:
                raise ValueError(f"method {type(self).__name__} reads features: it needs an example batch")
            with torch.no_grad():
                was = student.training
                s_features = student.eval()(example).features
                student.train(was)
        for k, source in enumerate(self.sources):
            t_features: dict[str, torch.Tensor] = {}
            if needs_features:
                with torch.no_grad():
                    t_device = next(source.model.parameters()).device
                    t_features = {n: v.cpu() for n, v in source.model(example.to(t_device)).features.items()}
            layers: list[tuple[str, str]] = []
            for i, spec in enumerate(self.spec_list):
                term = TERMS[spec.term]
                if term.reads != "feature":
                    layers.append(("", ""))
                    continue
                s_name, t_name = resolve_layer(spec.student_layer, s_features), resolve_layer(spec.teacher, t_features)
                layers.append((s_name, t_name))
                if term.adapted:
                    self.adapters[_adapter_key(i, k)] = feature.make_adapter(tuple(s_features[s_name].shape[1:]),
                                                                            tuple(t_features[t_name].shape[1:]))
            self.layers.append(layers)

    @property
    def sources(self) -> list[TeacherSource]:
        """Every teacher this method learns from (``teacher_weights`` says how much each counts)."""
        return [self.teacher, *self.more_teachers] if self.teacher is not None else []

    def teacher_keys(self, source: int = 0) -> set[str]:
        """Which outputs of teacher ``source`` the terms read: logits and/or named features (what the study caches)."""
        keys = {LOGITS}
        for (_, t_name), spec in zip(self.layers[source], self.spec_list, strict=True):
            reads = TERMS[spec.term].reads
            keys.add(t_name if reads == "feature" else reads)
        return keys

    @property
    def ce_weight(self) -> float:
        """The weight of cross-entropy on the labels: ``1 - alpha`` beside response terms (alpha's meaning),
        else the method's ``ce_weight`` (1 by default, the reference code's), alpha not applied."""
        if any(TERMS[spec.term].reads == LOGITS for spec in self.spec_list):
            return 1 - self.cfg.alpha
        return float(getattr(self.params, "ce_weight", 1.0))

    def step(self, batch: Batch) -> StepOutput:
        """Label loss plus each term: a response term reads the teachers' mixed softened distributions
        (:func:`~kdcore.losses.response.mixture_logits`) and is scaled by alpha (and ``response_scale``), a
        feature or relation term is the weighted mean of its value on each teacher, through that teacher's own
        adapter, scaled by its weight alone; cross-entropy weighs :attr:`ce_weight`."""
        assert self.teacher is not None
        out: ModelOutput = self.student(batch.x)
        alpha = self.cfg.alpha
        losses = {"ce": self.ce_weight * targets.cross_entropy(out.logits, batch.y, self.cfg.label_smoothing)}
        seen = [source.outputs(batch, self.teacher_keys(k)) for k, source in enumerate(self.sources)]
        s_rows, t_rows, y_rows = targets.scored_pairs(out.logits, self._teacher_logits(seen), batch.y)
        rows = Batch(batch.x, y_rows, batch.index)  # response terms see the scored positions as samples
        for i, spec in enumerate(self.spec_list):
            term = TERMS[spec.term]
            if term.reads == LOGITS:
                value = alpha * self.response_scale * term.fn(s_rows, t_rows, rows, self.cfg)
            else:
                value = sum(w * term.fn(*self._pair(out, teacher, i, k), batch, self.cfg)
                            for k, (w, teacher) in enumerate(zip(self.teacher_weights, seen, strict=True)))
            name = spec.term if all(x.term != spec.term for x in self.spec_list[:i]) else f"{spec.term}_{i}"
            losses[name] = spec.weight * value
        return StepOutput(out.logits, losses)

    def _teacher_logits(self, seen: list[dict[str, Any]]) -> torch.Tensor:
        """The one teacher's logits, or logits of the weighted mixture of several at the method's temperature."""
        if len(seen) == 1:
            return seen[0][LOGITS]
        return response.mixture_logits([t[LOGITS] for t in seen], self.teacher_weights, self.cfg.temperature)

    def _pair(self, out: ModelOutput, teacher: dict[str, Any], term: int, source: int) -> tuple[Any, Any]:
        """What feature or relation term ``term`` compares for teacher ``source``: (student side, teacher side)."""
        if TERMS[self.spec_list[term].term].reads == ATTENTIONS:
            return out.attention_logits, teacher[ATTENTIONS]  # student scores, teacher probs
        s_name, t_name = self.layers[source][term]
        s_value = out.features[s_name]
        if _adapter_key(term, source) in self.adapters:
            s_value = self.adapters[_adapter_key(term, source)](s_value)
        return s_value, teacher[t_name]

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The student's parameters and the adapters (trained with it, never deployed)."""
        return self.parameters()


def _adapter_key(term: int, source: int) -> str:
    return str(term) if source == 0 else f"{term}@{source}"


def response_specs(cfg: Any, user: str) -> list[TermSpec]:
    """The config method's terms when all of them read logits; else a ValueError naming ``distill.method``.

    ``user`` says who needs outputs only, e.g. "the online mechanism exchanges outputs between peers".
    """
    from kdcore.registry import METHODS

    cls = METHODS.get(cfg.distill.method)
    specs: list[TermSpec] = []
    if hasattr(cls, "specs"):
        params = cls.Params.model_validate(cfg.distill.params) if hasattr(cls, "Params") else None
        specs = cls.specs(params)
    if not specs or any(TERMS[spec.term].reads != LOGITS for spec in specs):
        usable = [e.name for e in METHODS if e.obj.knowledge == "response" and hasattr(e.obj, "specs")]
        raise ValueError(f"distill.method: {user}, so it needs a method on logits alone; allowed: "
                         f"{', '.join(usable)} (or multi with response terms)")
    return specs


def response_losses(specs: list[TermSpec], student: torch.Tensor, teachers: list[torch.Tensor], batch: Batch,
                    cfg: Any) -> dict[str, torch.Tensor]:
    """Each logits term of ``specs`` from ``student`` towards each of ``teachers`` (averaged), alpha-weighted."""
    out: dict[str, torch.Tensor] = {}
    for i, spec in enumerate(specs):
        name = spec.term if spec.term not in out else f"{spec.term}_{i}"
        pairs = [targets.scored_pairs(student, t, batch.y) for t in teachers]
        value = torch.stack([TERMS[spec.term].fn(s, t, Batch(batch.x, y, batch.index), cfg)
                             for s, t, y in pairs]).mean()
        out[name] = cfg.alpha * spec.weight * value
    return out
