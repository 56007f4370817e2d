"""The decision tree that chooses a distillation approach, held as data, and ``advise(situation)``.

The tree has four steps (capacity gap, knowledge type, mechanism, representation gap). Each step
is a list of :class:`Branch` rows tried in order; the first whose condition holds fires, and the
:class:`Advice` records the path with the rule that fired at every step.

Policy where the two capacity rules leave a gap or disagree
-----------------------------------------------------------
The tree sizes the gap by parameters (1-2x: direct, 10x+: progressive); the diagnostic table sizes it
by performance, the teacher's accuracy over the student's accuracy when trained alone (1.1-1.5x:
direct, 1.5-3x: one assistant, 3x+: several, below 1.1x: similar, learn together).

* When the performance ratio is known it decides: it measures what the student can actually decode,
  while parameters only predict it. When the parameter rule would have said something else, the
  advice says so and names the rule it followed.
* When only parameters are known, 1-2x is direct and 10x+ is progressive. The band between (2-10x),
  which neither rule decides, gets direct distillation, with the advice to train the baseline first and
  to add one assistant if the performance ratio comes out at 1.5x or more.
* With neither, the gap is not assessed: the advice is direct distillation and says so.

Precedence between step 1 and step 3 (the mechanism)
----------------------------------------------------
Step 3 chooses the mechanism; step 1 sizes the gap (and with it the assistants of a chain).

* Online (mutual) learning needs exploration AND several learners. Exploration is needed when no
  proven expert exists or the domain drifts. Either fact alone is not enough: several learners beside a
  proven teacher on a stable domain learn from that teacher; one learner on a drifting domain keeps its
  proven teacher (re-distil when the teacher is retrained); one learner without a teacher teaches itself.
* A proven teacher on a stable domain keeps offline (or progressive, when the gap needs assistants),
  even when step 1 finds similar performance (below 1.1x) and alone would say collaborative: learning
  together needs several learners. The advice then shows the disagreement, in step 3's detail and in
  its policy text.

Assistants (the capacity table's rows)
--------------------------------------
1.5-3x in performance gets exactly one assistant. 3x+ in performance, and 10x+ in parameters when
accuracies are unknown, is multi-step: at least two assistants, more when the parameter ratio needs them
for every stage to stay within 5x, up to three. The survey's worked example 1 (175B -> 500M parameters,
350x) therefore gets three assistants, where the survey draws one (1.5B). The advice follows the 5x-per-stage
rule and says so, naming the one-assistant chain as the alternative (its assistant at the geometric mean,
about 9.4B, with about 19x per stage; the survey's 1.5B makes a 117x first stage).

Temperatures per stage
----------------------
A chain's stages get one temperature each (the assistants, then the student), from the stage's own
parameter ratio: the direct gap's suggestion at 2x or less, the progressive gap's at 10x or more,
log-linear between (softer targets across wider steps), to the nearest 0.5.

NOT-FOR boundaries
------------------
Six situations make distillation the wrong tool (:data:`kdcore.config.BOUNDARY_NAMES`). When any
applies, the verdict is "do not distill", with the alternative; ``Advice.to_config`` refuses unless every
one that applies is accepted, and records the accepted ones in ``distill.accepted_boundaries`` and the
rationale.

The recorded rationale
----------------------
``Advice.rationale`` ends with one line, ``Situation: mechanism=...; needs=...; ...``, holding the
mechanism, the situation's inputs a study cannot measure (:data:`RECORDED_FLAGS`) and the boundaries.
:func:`parse_rationale` reads it back; :func:`situation_from_flags` merges those flags with the sides a
study measured, so a study can be re-advised on its own numbers and compared with what it recorded.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any, Literal
from urllib.parse import quote, unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kdcore.boundaries import BOUNDARY_FLAGS, BOUNDARY_NAMES, BOUNDARY_SWITCHES
from kdcore.config import DataConfig, ModelConfig, first_error
from kdcore.registry import DATASETS, MECHANISMS, METHODS, MODELS, UnknownNameError, data_meta, model_fits

# --- thresholds (the survey's numbers, named) -------------------------------------------------------
SMALL_PARAM_GAP = 2.0  # teacher at most 2x the student's parameters: a small gap
LARGE_PARAM_GAP = 10.0  # teacher 10x or more: a large gap
SIMILAR_PERFORMANCE = 1.1  # performance ratio below this: similar, learn together
ONE_ASSISTANT_PERFORMANCE = 1.5  # from here, one teacher assistant bridges the gap
PROGRESSIVE_PERFORMANCE = 3.0  # from here, several steps
MAX_STAGE_GAP = 5.0  # assistants are added until neighbouring stages differ by at most 5x in parameters
MAX_ASSISTANTS = 3
BETTER_ALONE = 0.99  # (project) performance ratio below this: the student does better alone; within 1% the
# two are equal, a validation split's noise (e.g. 87.0% against 87.5%)
MIN_MULTI_STEP_ASSISTANTS = 2  # the 3x+ row is multi-step: at least two assistants, so at least three stages
# Suggested temperature range per gap: softer targets for wider gaps (the product's heuristic; Hinton
# et al. 2015 report 2-20, and T=4 is the common default for image classifiers).
TEMPERATURES: dict[str, tuple[float, float, float]] = {  # gap -> (low, high, suggested)
    "similar": (1.0, 3.0, 2.0), "direct": (2.0, 5.0, 4.0), "one_assistant": (3.0, 6.0, 4.0),
    "progressive": (4.0, 8.0, 6.0), "undecided": (2.0, 6.0, 4.0), "unknown": (2.0, 6.0, 4.0),
}

Need = Literal["decisions", "patterns", "structure"]
KNOWLEDGE_FOR_NEED = {"decisions": "response", "patterns": "feature", "structure": "relation"}
METHOD_FOR_KNOWLEDGE = {"response": "kd", "feature": "fitnet", "relation": "rkd"}
STEPS = {1: "Assess the capacity gap", 2: "Identify the knowledge needed", 3: "Select the transfer mechanism",
         4: "Handle the representation gap"}


class AdviceError(ValueError):
    """A situation or an advice that cannot become a config; the message names the field."""


# --- the situation ------------------------------------------------------------------------------------
class Side(BaseModel):
    """Teacher or student: a registered model (with a size preset or width/depth), a model of yours (a model
    source such as hf or import, with its path), or a parameter count."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Registered model (kdx list models).")
    size: str | None = Field(None, description="The model's size preset: tiny, small, medium or large.")
    width: int | None = Field(None, ge=1, le=4096)
    depth: int | None = Field(None, ge=1, le=16)
    params: int | None = Field(None, ge=1, description="Parameter count; computed from the model when empty.")
    accuracy: float | None = Field(None, ge=0, le=1, description="Accuracy, for the student: trained alone.")
    modality: str | None = Field(None, description="e.g. image, signal, text, rgb, depth; empty = the dataset's.")
    architecture: str | None = Field(None, description="e.g. mlp, cnn, transformer; empty = the model's family.")
    task: str = Field("classification", description="What the side predicts.")
    path: str | None = Field(None, description="A model source's folder, hub id, import path or model name.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="A model source's factory arguments.")
    features: dict[str, str] = Field(default_factory=dict, description="A model source's hooked features.")
    checkpoint: str | None = Field(None, description="Weights the model starts from (written into the config).")
    train: bool = Field(True, description="false: a teacher used as it is (written into the config).")

    @field_validator("model")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                MODELS.entry(value)
            except UnknownNameError as err:
                raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _source_complete(self) -> Side:
        """A model source is described as the config describes it (its path above all), so it can be sized."""
        if self.model is not None and (self.is_source() or self.checkpoint or not self.train):
            try:
                ModelConfig.model_validate(self.model_fields_for_config())
            except ValidationError as err:
                raise ValueError(first_error(err)) from None
        return self

    def is_source(self) -> bool:
        return bool(self.model) and bool(MODELS.entry(self.model).meta.get("source"))  # type: ignore[arg-type]

    def source(self) -> dict[str, Any]:
        """The model-source fields that are set (path, kwargs, features), as a config writes them."""
        return {key: value for key in ("path", "kwargs", "features") if (value := getattr(self, key))}

    def model_fields_for_config(self, width: int | None = None, depth: int | None = None) -> dict[str, Any]:
        """This side as a config's model section: name, size, source fields, checkpoint and ``train``."""
        fields: dict[str, Any] = {"name": self.model, "width": width if width is not None else self.width,
                                  "depth": depth if depth is not None else self.depth, **self.source()}
        if self.checkpoint:
            fields["checkpoint"] = self.checkpoint
        if not self.train:
            fields["train"] = False
        return fields

    @model_validator(mode="after")
    def _size_known(self) -> Side:
        if self.size is not None:
            if self.model is None:
                raise ValueError("size: needs a model to look the size up in")
            sizes = MODELS.entry(self.model).meta.get("sizes", {})
            if self.size not in sizes:
                raise ValueError(f"size: {self.model} has no size {self.size!r}; allowed: {', '.join(sizes)}")
        if self.model is None and self.params is None:
            raise ValueError("model: give a registered model or a parameter count (params)")
        return self

    def shape(self) -> tuple[int, int] | None:
        """(width, depth): explicit values first, then the size preset, then the model's defaults."""
        if self.model is None:
            return None
        if self.is_source():  # what the source builds, unless a size overrides it
            return self.width, self.depth  # type: ignore[return-value]
        preset = MODELS.entry(self.model).meta.get("sizes", {}).get(self.size or "medium", (64, 2))
        return self.width or preset[0], self.depth or preset[1]


class Situation(BaseModel):
    """What the advisor needs to know; everything but the two sides has a sensible default."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(None, description="Registered dataset; sizes models and makes the config runnable.")
    data: dict[str, Any] | None = Field(None, description="Your data, as a config's data section (name csv, path, "
                                                          "target, ...); replaces dataset.")
    teacher: Side
    student: Side
    needs: list[Need] = Field(default_factory=lambda: ["decisions"], min_length=1,
                              description="What the task needs: decisions, patterns, structure, or several.")
    proven_teacher: bool = Field(True, description="A trained, trusted teacher exists.")
    stable_domain: bool = Field(True, description="The data does not drift while the student learns.")
    several_learners: bool = Field(False, description="Several learners train together (a cohort, not one student).")
    rule_based: bool = Field(False, description=BOUNDARY_SWITCHES["rule_based"])
    real_time: bool = Field(False, description=BOUNDARY_SWITCHES["real_time"])
    needs_new_capabilities: bool = Field(False, description=BOUNDARY_SWITCHES["needs_new_capabilities"])
    safety_critical: bool = Field(False, description=BOUNDARY_SWITCHES["safety_critical"])
    interpretability_first: bool = Field(False, description=BOUNDARY_SWITCHES["interpretability_first"])

    @field_validator("dataset")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                DATASETS.entry(value)
            except UnknownNameError as err:
                raise ValueError(str(err)) from None
            if DATASETS.entry(value).meta.get("source"):
                raise ValueError(f"{value} reads your files: describe them under data (name, path, ...)")
        return value

    @model_validator(mode="after")
    def _data_readable(self) -> Situation:
        """Your data must be what a config's data section accepts, and readable: it sizes the models. Its text
        is read with a Hugging Face teacher's tokenizer, as the study will read it."""
        if self.data is not None:
            if self.teacher.model == "hf" and self.teacher.path and not self.data.get("tokenizer"):
                self.data = {**self.data, "tokenizer": self.teacher.path}
            try:
                data_meta(DataConfig.model_validate(self.data))
            except ValidationError as err:
                raise ValueError(first_error(err)) from None
            except ValueError as err:
                raise ValueError(str(err) if str(err).startswith("data.") else f"data: {err}") from None
        return self

    def data_spec(self) -> Any:
        """What the models are sized on: your data's config, the registered dataset's name, or None."""
        if self.data is not None:
            return DataConfig.model_validate(self.data)
        return self.dataset


def situation(raw: dict[str, Any]) -> Situation:
    """Validate a raw mapping (a YAML file, CLI flags, a form) into a Situation, or one-line AdviceError."""
    if not isinstance(raw, dict):
        raise AdviceError(f"situation: expected a mapping, got {type(raw).__name__}")
    try:
        return Situation.model_validate(raw)
    except ValidationError as err:
        raise AdviceError(first_error(err)) from None  # the config's wording: same fields, same messages


# --- facts the branches read --------------------------------------------------------------------------
@dataclass(frozen=True)
class Facts:
    """A situation resolved against the registries: sizes, ratios, and what differs between the sides."""

    teacher_params: int | None
    student_params: int | None
    parameter_ratio: float | None
    performance_ratio: float | None
    teacher_modality: str | None
    student_modality: str | None
    teacher_architecture: str | None
    student_architecture: str | None
    needs: tuple[str, ...]
    s: Situation

    @property
    def cross_modal(self) -> bool:
        return None not in (self.teacher_modality, self.student_modality) and \
            self.teacher_modality != self.student_modality

    @property
    def other_task(self) -> bool:
        return self.s.teacher.task != self.s.student.task

    @property
    def other_architecture(self) -> bool:
        return None not in (self.teacher_architecture, self.student_architecture) and \
            self.teacher_architecture != self.student_architecture


def _dataset_for(s: Situation) -> Any:
    """The situation's data (your data's config or a dataset name), else the first built-in dataset both models
    accept (to count parameters)."""
    if s.data_spec() is not None:
        return s.data_spec()
    models = [side.model for side in (s.teacher, s.student) if side.model]
    fitting = [e.name for e in DATASETS
               if not e.meta.get("source") and all(model_fits(m, e.name) for m in models)]
    return fitting[0] if fitting else None


def parameters(model: str, width: int | None, depth: int | None, dataset: Any, **source: Any) -> int:
    """Parameter count of a model at a size, for the data's input shape and classes (a dataset name or your data's
    config), counted without allocating weights; ``source`` holds a model source's path, kwargs and features."""
    if MODELS.entry(model).meta.get("fixed_size"):  # a named variant: its own size, whatever was asked
        width = depth = None
    spec = ModelConfig(name=model, width=width, depth=depth, **source)
    return _parameters(spec.model_dump_json(), dataset if isinstance(dataset, str) else dataset.model_dump_json())


@functools.lru_cache(maxsize=256)
def _parameters(spec_json: str, data_json: str) -> int:
    from kdcore.models.sizing import count_parameters_without_weights  # torch only when sizes are needed

    meta = data_meta(DataConfig.model_validate_json(data_json) if data_json.startswith("{") else data_json)
    spec = ModelConfig.model_validate_json(spec_json)
    return count_parameters_without_weights(spec, meta["input_shape"], meta["num_classes"])


def source_shape(side: Side) -> tuple[int, int] | None:
    """(width, depth) of what a Hugging Face side builds, from its config (no weights read); None otherwise."""
    if side.model != "hf" or not side.path:
        return None
    from kdcore.models.hf import load_config

    config = load_config(side.path)
    width, depth = getattr(config, "hidden_size", None), getattr(config, "num_hidden_layers", None)
    return (side.width or width, side.depth or depth) if width and depth else None


def buildable(model: str) -> str | None:
    """The model assistants of ``model`` are built from: itself, or the parametric family of a
    fixed-size variant (resnet56 -> resnet); None when there is none."""
    meta = MODELS.entry(model).meta
    if not meta.get("fixed_size"):
        return model
    family = meta.get("family")
    return family if family in MODELS and not MODELS.entry(family).meta.get("fixed_size") else None


def _side_params(side: Side, dataset: str | None) -> int | None:
    if side.params is not None:
        return side.params
    shape = side.shape()
    if shape is None or dataset is None:
        return None
    return parameters(side.model, *shape, dataset, **side.source())  # type: ignore[arg-type]


def facts(s: Situation) -> Facts:
    """The situation's sizes and ratios; a model of yours that cannot be read is an AdviceError naming its side."""
    from kdcore.models.base import ModelSourceError

    for role in ("teacher", "student"):  # a source is read once here, so its error names its side
        side = getattr(s, role)
        try:
            _side_params(side, _dataset_for(s))
            source_shape(side)
        except ModelSourceError as err:
            raise AdviceError(f"{role}.{err.field}: {err}") from None
    return _facts(s)


def _facts(s: Situation) -> Facts:
    dataset = _dataset_for(s)
    t_params, s_params = _side_params(s.teacher, dataset), _side_params(s.student, dataset)
    p_ratio = t_params / s_params if t_params and s_params else None
    t_acc, s_acc = s.teacher.accuracy, s.student.accuracy
    perf = t_acc / s_acc if t_acc is not None and s_acc else None
    modality = data_meta(s.data_spec()).get("modality") if s.data_spec() is not None else None

    def family(side: Side) -> str | None:
        if side.architecture or not side.model:
            return side.architecture
        if side.model == "hf" and side.path:  # the transformers model type: bert, gpt2, vit, ...
            from kdcore.models.hf import load_config

            return f"hf:{load_config(side.path).model_type}"
        if side.is_source():  # your module: its factory is its family
            return f"{side.model}:{side.path}"
        return MODELS.entry(side.model).meta.get("family", side.model)

    return Facts(t_params, s_params, p_ratio, perf, s.teacher.modality or modality, s.student.modality or modality,
                 family(s.teacher), family(s.student), tuple(dict.fromkeys(s.needs)), s)


# --- the tree as data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Branch:
    """One leaf of a step: its condition (in words and as code) and what it decides."""

    step: int
    id: str
    label: str  # short, for the drawing
    rule: str  # the condition, in words
    outcome: str  # the decision, as the value the advice reads (gap, knowledge, mechanism, handling)
    when: Callable[[Facts], bool] = field(repr=False)


def _perf(f: Facts, low: float, high: float) -> bool:
    return f.performance_ratio is not None and low <= f.performance_ratio < high


def _params(f: Facts, low: float, high: float) -> bool:
    return f.performance_ratio is None and f.parameter_ratio is not None and low <= f.parameter_ratio < high


def _exploring(f: Facts) -> bool:
    """Exploration is needed: no proven expert to follow, or a domain that drifts under the learners."""
    return not f.s.proven_teacher or not f.s.stable_domain


def _mutual(f: Facts) -> bool:
    """Online (mutual) learning: several learners AND exploration; neither alone (module docstring)."""
    return f.s.several_learners and _exploring(f)


TREE: tuple[Branch, ...] = (
    # 1. capacity gap: the performance ratio decides when known, else the parameter ratio
    Branch(1, "peers", "Peer learning", "several learners explore together: they are peers", "similar", _mutual),
    Branch(1, "perf_similar", "Similar performance", "performance ratio below 1.1x", "similar",
           lambda f: _perf(f, 0, SIMILAR_PERFORMANCE)),
    Branch(1, "perf_direct", "Performance 1.1-1.5x", "performance ratio 1.1-1.5x: the student can decode the "
           "teacher", "direct", lambda f: _perf(f, SIMILAR_PERFORMANCE, ONE_ASSISTANT_PERFORMANCE)),
    Branch(1, "perf_one_assistant", "Performance 1.5-3x", "performance ratio 1.5-3x: one assistant bridges the "
           "gap", "one_assistant", lambda f: _perf(f, ONE_ASSISTANT_PERFORMANCE, PROGRESSIVE_PERFORMANCE)),
    Branch(1, "perf_progressive", "Performance 3x+", "performance ratio 3x or more: several steps keep knowledge "
           "from being lost", "progressive", lambda f: _perf(f, PROGRESSIVE_PERFORMANCE, math.inf)),
    Branch(1, "params_small", "Parameters 1-2x", "teacher at most 2x the student's parameters", "direct",
           lambda f: _params(f, 0, SMALL_PARAM_GAP + 1e-9)),
    Branch(1, "params_large", "Parameters 10x+", "teacher 10x or more the student's parameters", "progressive",
           lambda f: _params(f, LARGE_PARAM_GAP, math.inf)),
    Branch(1, "params_band", "Parameters 2-10x", "parameter ratio 2-10x, performance unknown: neither rule "
           "decides; direct distillation, then measure", "undecided",
           lambda f: _params(f, SMALL_PARAM_GAP, LARGE_PARAM_GAP)),
    Branch(1, "unassessed", "Gap unknown", "neither sizes nor accuracies known", "unknown", lambda f: True),
    # 2. knowledge type
    Branch(2, "multi", "Several types", "the task needs several kinds of knowledge", "multi",
           lambda f: len(f.needs) > 1),
    Branch(2, "decisions", "Final decisions", "the task needs final decisions", "response",
           lambda f: f.needs == ("decisions",)),
    Branch(2, "patterns", "Patterns", "the task needs pattern recognition", "feature",
           lambda f: f.needs == ("patterns",)),
    Branch(2, "structure", "Structure", "the task needs structural reasoning", "relation",
           lambda f: f.needs == ("structure",)),
    # 3. mechanism
    Branch(3, "cross_modal", "Cross-modal", "teacher and student see different modalities", "cross_modal",
           lambda f: f.cross_modal),
    Branch(3, "explore", "Exploration, several learners", "several learners, and exploration is needed (no "
           "proven teacher, or the domain drifts)", "online", _mutual),
    Branch(3, "no_teacher", "No teacher", "no proven external teacher is available", "self",
           lambda f: not f.s.proven_teacher),
    Branch(3, "chain", "Proven expert, large gap", "a proven teacher on a stable domain, with a gap that needs "
           "assistants", "progressive", lambda f: _gap(f) in {"one_assistant", "progressive"}),
    Branch(3, "offline", "Proven expert", "a proven teacher on a stable domain", "offline", lambda f: True),
    # 4. representation gap
    Branch(4, "modalities", "Different modalities", "the sides see different modalities: align them on paired "
           "samples", "paired_alignment", lambda f: f.cross_modal),
    Branch(4, "tasks", "Different tasks", "the sides solve different tasks: transfer structure, not outputs",
           "structural", lambda f: f.other_task),
    Branch(4, "architectures", "Different architectures", "the architectures differ: attention transfer or "
           "learned feature adapters", "adapt", lambda f: f.other_architecture),
    Branch(4, "same", "Same modality", "same modality and architecture family: match features directly",
           "direct_match", lambda f: True),
)


def branches(step: int) -> list[Branch]:
    return [b for b in TREE if b.step == step]


def fire(step: int, f: Facts) -> Branch:
    """The first branch of ``step`` whose condition holds (the last branch of each step always holds)."""
    return next(b for b in branches(step) if b.when(f))


def _gap(f: Facts) -> str:
    return fire(1, f).outcome


def edges() -> list[tuple[str, str]]:
    """The tree's edges for drawing: situation -> each step -> its branches -> the next step."""
    out = [("situation", "step1")]
    for step in STEPS:
        out += [(f"step{step}", b.id) for b in branches(step)]
        if step + 1 in STEPS:
            out.append((f"step{step}", f"step{step + 1}"))
    return out


# --- the advice ----------------------------------------------------------------------------------------
DISTILL, DO_NOT_DISTILL = "distill", "do not distill"
RATIONALE_LIMIT = 4000  # distill.rationale's maximum length in the config


@dataclass
class Fired:
    step: int
    question: str
    branch: str
    rule: str
    outcome: str
    detail: str = ""


@dataclass
class Assistant:
    name: str | None
    width: int | None
    depth: int | None
    params: int
    source: dict[str, Any] = field(default_factory=dict)  # a model source's path (a Hugging Face family)


@dataclass
class Boundary:
    """A NOT-FOR boundary that applies: distillation is the wrong tool here, and what to use instead."""

    name: str  # one of kdcore.config.BOUNDARY_NAMES
    boundary: str
    instead: str


@dataclass
class Advice:
    """The tree's answer: the path, what to run, and why; or "do not distill" when a boundary applies."""

    situation: Situation
    path: list[Fired]
    gap: str
    mechanism: str
    knowledge: list[str]
    method: str
    representation: str
    assistants: list[Assistant]
    assistant_rule: str
    chain_rule: str  # why this many assistants (multi-step chains)
    temperature: tuple[float, float, float]
    stage_temperatures: list[float]  # progressive: one per stage, the assistants first and the student last
    stage_rule: str
    not_for: list[Boundary]
    policy: str
    parameter_ratio: float | None
    performance_ratio: float | None

    @property
    def boundaries(self) -> list[str]:
        """The names (BOUNDARY_NAMES) of the NOT-FOR boundaries that apply."""
        return [b.name for b in self.not_for]

    @property
    def verdict(self) -> str:
        return DO_NOT_DISTILL if self.not_for else DISTILL

    @property
    def rationale(self) -> str:
        """The advice in a few sentences, recorded on a study as its justification (quality gate 8)."""
        return self.record()

    def record(self, accepted: Iterable[str] = ()) -> str:
        """The rationale with the boundaries ``accepted`` acknowledged; its last line is the :func:`parse_rationale`
        record, kept whole within the config's length limit."""
        chosen = set(accepted)
        taken = [name for name in self.boundaries if name in chosen]
        line = situation_line(self, taken)
        body = " ".join(part for part in (self._verdict_text(taken), self._advice_text()) if part)
        room = max(1, RATIONALE_LIMIT - len(line) - 1)
        if len(body) > room:
            body = body[:room - 1].rstrip() + "…"
        return f"{body}\n{line}"

    def _verdict_text(self, accepted: list[str]) -> str:
        if not self.not_for:
            return ""
        text = "Do not distill. " + " ".join(f"{b.boundary} Instead: {b.instead}" for b in self.not_for)
        return text + (f" Acknowledged, distilling anyway despite: {', '.join(accepted)}." if accepted else "")

    def _advice_text(self) -> str:
        steps = " ".join(f"{p.step}. {p.question}: {p.rule}" + (f" ({p.detail})" if p.detail else "") +
                         f" -> {p.outcome}." for p in self.path)
        chain = f"Assistants: {', '.join(_assistant_label(a) for a in self.assistants)}." if self.assistants else ""
        low, high, _ = self.temperature
        lead = "If distilled anyway" if self.not_for else "Advice"
        parts = (f"{lead}: {self.mechanism} distillation of {'+'.join(self.knowledge)} knowledge (method "
                 f"{self.method}).", steps, chain, self.chain_rule, f"Temperature {low:g}-{high:g}.", self.stage_rule,
                 self.policy)
        return " ".join(part for part in parts if part)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["situation"] = self.situation.model_dump(mode="json")
        out |= {"rationale": self.rationale, "boundaries": self.boundaries, "verdict": self.verdict}
        return out

    def runnable(self, accept: Iterable[str] = ()) -> str | None:
        """Why ``to_config(accept=accept)`` cannot build this advice, or None when it can."""
        try:
            self.to_config(accept=accept)
        except AdviceError as err:
            return str(err).removeprefix("advice: ")
        return None

    def refusal(self, accept: Iterable[str] = ()) -> str | None:
        """The one-line "do not distill" for the boundaries that apply and are not in ``accept``; None if none."""
        accepted = set(accept)
        open_ = [b for b in self.not_for if b.name not in accepted]
        if not open_:
            return None
        names = [b.name for b in open_]
        which = f"the {names[0]} boundary applies" if len(names) == 1 else \
            f"the {', '.join(names[:-1])} and {names[-1]} boundaries apply"
        flags = " ".join(f"--accept-boundary {name}" for name in names)
        return f"do not distill: {which}; to distill anyway, pass {flags}"

    def _missing(self) -> str | None:
        """What the advice lacks before a config can even be assembled."""
        if self.mechanism not in MECHANISMS:
            return (f"the {self.mechanism} mechanism is not built into kdcore yet (available: "
                    f"{', '.join(MECHANISMS.names())})")
        if self.method not in METHODS:
            return f"the {self.method} method is not built into kdcore yet (available: {', '.join(METHODS.names())})"
        for role in ("teacher", "student"):
            if getattr(self.situation, role).model is None:
                return f"{role}.model: a parameter count cannot be trained; name a registered model"
        if self.situation.data_spec() is None:
            return "dataset: name a registered dataset to train on, or describe your data under data"
        if any(a.name is None for a in self.assistants):
            return ("assistants: they cannot be built from this teacher (a module of yours or a fixed model); "
                    "write them in distill.assistants")
        return None

    def to_config(self, base: dict[str, Any] | None = None, accept: Iterable[str] = ()) -> Any:
        """A runnable :class:`~kdcore.config.ExperimentConfig` for this advice, on top of ``base`` (a raw config).

        ``accept`` names the NOT-FOR boundaries to distill despite; every one that applies must be accepted.
        Raises :class:`AdviceError` naming what is missing, or the boundary that stops it.
        """
        from kdcore.config import ConfigError, validate

        accept = list(accept)
        unknown = [name for name in accept if name not in BOUNDARY_NAMES]
        if unknown:
            raise AdviceError(f"accept: unknown boundary {unknown[0]!r}; allowed: {', '.join(BOUNDARY_NAMES)}")
        problem = self.refusal(accept) or self._missing()
        if problem:
            raise AdviceError(f"advice: {problem}")
        accepted = [name for name in self.boundaries if name in accept]
        s = self.situation
        raw = {key: dict(value) if isinstance(value, dict) else value for key, value in (base or {}).items()}
        for role in ("teacher", "student"):
            side: Side = getattr(s, role)
            width, depth = side.shape()  # type: ignore[misc]
            if MODELS.entry(side.model).meta.get("fixed_size"):  # type: ignore[arg-type]
                width = depth = None
            raw[role] = side.model_fields_for_config(width, depth)
        data = raw.setdefault("data", {})
        if s.data is not None:  # your data: its section as given, over the base's split settings
            raw["data"] = {**(data if data.get("name") == s.data.get("name") else {}), **s.data}
        elif data.get("name") != s.dataset:
            raw["data"] = {"name": s.dataset}
        distill = raw.setdefault("distill", {})
        distill.update(method=self.method, mechanism=self.mechanism, temperature=self.temperature[2],
                       assistants=[{"name": a.name, "width": a.width, "depth": a.depth, **a.source}
                                   for a in self.assistants],
                       rationale=self.record(accepted), accepted_boundaries=accepted, params={})
        for key in MECHANISM_FIELDS:  # the base's mechanism-specific values belong to its own mechanism
            distill.pop(key, None)
        if self.mechanism == "progressive" and self.stage_temperatures:
            distill["stage_temperatures"] = list(self.stage_temperatures)
        if self.mechanism == "online":  # the teacher's side of the situation becomes the student's peer
            distill["peers"] = [{k: v for k, v in raw["teacher"].items() if k != "train"}]  # a peer learns
        if self.mechanism == "self":  # born-again generations (distill.self_kind: spatial for early exits)
            distill["self_kind"] = "temporal"
        if self.mechanism == "cross_modal":  # the sides' modalities are the dataset's views
            views = data_meta(s.data_spec()).get("views", {})
            distill |= {f"{role}_view": side.modality for role, side in (("teacher", s.teacher), ("student", s.student))
                        if side.modality in views}
        if self.method == "multi":
            distill |= multi_terms(self.knowledge, self.mechanism, len(self.assistants), raw["teacher"],
                                   raw["student"], s.data_spec())
        try:
            return validate(raw)
        except ConfigError as err:
            raise AdviceError(f"advice: {err}") from None


MECHANISM_FIELDS = ("stage_temperatures", "stage_params", "skip_to_teacher", "peers", "self_kind", "generations",
                    "exit", "teacher_view", "student_view", "align", "align_epochs")


# --- multi-level: the terms each knowledge type trains ---------------------------------------------------
def _default(method: str, param: str) -> float:
    """A method's own default weight, so a multi-level term weighs what the single method would."""
    return METHODS.get(method).Params.model_fields[param].default


def knowledge_term(knowledge: str, teacher: dict[str, tuple[int, ...]],
                   student: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The multi method's term for one knowledge type, given both models' feature shapes (name -> shape).

    response: ``kd`` on logits. feature: ``at`` on the last blocks when both are spatial maps (shape-free),
    else ``hint`` through an adapter (the last block of transformers, else the penultimate vectors).
    relation: ``attention_pattern`` when both expose attentions, else ``rkd_distance`` on the embeddings.
    """
    from kdcore.methods.terms import ATTENTIONS, resolve_layer

    attentions = ATTENTIONS in teacher and ATTENTIONS in student
    if knowledge == "response":
        return {"term": "kd"}
    if knowledge == "feature":
        if attentions:
            return {"term": "hint", "student_layer": "last"}  # hidden states (MiniLM-style)
        if all(len(shapes[resolve_layer("last", shapes)]) >= 2 for shapes in (teacher, student)):
            return {"term": "at", "weight": _default("at", "weight"), "student_layer": "last"}
        return {"term": "hint", "weight": _default("fitnet", "weight"), "student_layer": "penultimate"}
    if attentions:
        return {"term": "attention_pattern"}
    return {"term": "rkd_distance", "weight": _default("rkd", "distance_weight"), "student_layer": "penultimate"}


KNOWLEDGE_ORDER = ("response", "feature", "relation")


def multi_terms(knowledge: list[str], mechanism: str, assistants: int, teacher: dict[str, Any],
                student: dict[str, Any], dataset: Any) -> dict[str, Any]:
    """``distill.params`` (or ``stage_params``) of the multi method for the knowledge types named.

    Transformer chains differ per stage: the first stage learns what the survey's worked example 1 gives
    it; later stages, between models of closer size, also match hidden states (feature knowledge).
    """
    from kdcore.methods.terms import ATTENTIONS, TermSpec, feature_shapes

    shapes = [feature_shapes({key: value for key, value in side.items() if key not in ("checkpoint", "train")}, dataset)
              for side in (teacher, student)]

    def terms(kinds: list[str]) -> list[dict[str, Any]]:  # every field written out, as the Launch form edits them
        return [TermSpec.model_validate(knowledge_term(kind, *shapes)).model_dump() for kind in kinds]

    first = terms(knowledge)
    if mechanism == "progressive" and assistants and all(ATTENTIONS in s for s in shapes):
        later = terms([kind for kind in KNOWLEDGE_ORDER if kind in {*knowledge, "feature"}])
        return {"stage_params": [{"terms": first}] + [{"terms": later}] * assistants}
    return {"params": {"terms": first}}


# --- assistants and per-stage temperatures ---------------------------------------------------------------
def _assistant_label(a: Assistant) -> str:
    name = f"{a.name} w{a.width} d{a.depth}" if a.name else "a model"
    return f"{name} (~{a.params:,} parameters)"


def assistant_count(gap: str, parameter_ratio: float | None) -> int:
    """How many assistants a gap calls for: exactly one for 1.5-3x; for a multi-step gap at least two, and
    enough for every stage to stay within 5x in parameters (at most MAX_ASSISTANTS)."""
    if gap == "one_assistant":
        return 1
    if gap != "progressive":
        return 0
    by_params = 0
    if parameter_ratio and parameter_ratio > 1:
        by_params = math.ceil(math.log(parameter_ratio) / math.log(MAX_STAGE_GAP) - 1e-9) - 1
    return min(MAX_ASSISTANTS, max(MIN_MULTI_STEP_ASSISTANTS, by_params))


def chain_rule(f: Facts, n: int) -> str:
    """Why a multi-step chain has ``n`` assistants, and the chain of one assistant it is not (module docstring)."""
    if n < MIN_MULTI_STEP_ASSISTANTS:
        return ""
    text = (f"{n} assistants: a gap this wide is multi-step (at least {MIN_MULTI_STEP_ASSISTANTS} assistants), with "
            f"more while a stage would exceed {MAX_STAGE_GAP:g}x in parameters (at most {MAX_ASSISTANTS}).")
    if f.teacher_params and f.student_params:
        middle = math.sqrt(f.teacher_params * f.student_params)
        text += (f" A chain of one assistant: ~{middle:,.0f} parameters at the geometric mean, "
                 f"{math.sqrt(f.teacher_params / f.student_params):.1f}x per stage.")
    return text


ASSISTANT_RULE = ("Assistant k of n aims at P_t^(1-k/(n+1)) * P_s^(k/(n+1)) parameters (geometric interpolation, "
                  "so every stage shrinks the model by the same factor). It keeps the teacher's architecture, with "
                  "depth interpolated linearly between teacher and student and width chosen to hit that count.")


def interpolate_assistants(f: Facts, n: int) -> list[Assistant]:
    """``n`` assistants between teacher and student by geometric interpolation of the parameter count."""
    if n == 0 or not f.teacher_params or not f.student_params:
        return []
    s = f.s
    teacher, student = s.teacher, s.student
    out = []
    for k in range(1, n + 1):
        share = k / (n + 1)
        target = f.teacher_params ** (1 - share) * f.student_params ** share
        dataset = _dataset_for(s)
        model = buildable(teacher.model) if teacher.model else None
        if model is None or dataset is None:
            out.append(Assistant(None, None, None, round(target)))
            continue
        source = teacher.source() if model == teacher.model else {}  # a Hugging Face family: the teacher's config
        t_width, t_depth = source_shape(teacher) or teacher.shape()  # type: ignore[misc]
        if t_width is None or t_depth is None:
            out.append(Assistant(None, None, None, round(target)))
            continue
        same = student.model and _family(student.model) == _family(model) and student.source() == source
        s_depth = (source_shape(student) or student.shape())[1] if same else 1  # type: ignore[index]
        depth = max(1, round(t_depth + share * ((s_depth or 1) - t_depth)))
        width = _width_for(model, depth, dataset, target, t_width, source)
        out.append(Assistant(model, width, depth, parameters(model, width, depth, dataset, **source), source))
    return out


def _family(model: str) -> str:
    return MODELS.entry(model).meta.get("family", model)


def _width_for(model: str, depth: int, dataset: Any, target: float, ceiling: int,
               source: dict[str, Any] | None = None) -> int:
    """The width whose parameter count is closest to ``target`` (in ratio), by bisection over widths."""
    source = source or {}
    low, high = 1, max(ceiling, 2)
    while high - low > 1:
        middle = (low + high) // 2
        if parameters(model, middle, depth, dataset, **source) < target:
            low = middle
        else:
            high = middle
    return min((low, high), key=lambda w: abs(math.log(parameters(model, w, depth, dataset, **source) / target)))


def stage_temperature(ratio: float) -> float:
    """A stage's suggested temperature from its own parameter ratio: the direct gap's at 2x or less, the
    progressive gap's at 10x or more, log-linear between, to the nearest 0.5."""
    low, high = TEMPERATURES["direct"][2], TEMPERATURES["progressive"][2]
    share = math.log(max(ratio, SMALL_PARAM_GAP) / SMALL_PARAM_GAP) / math.log(LARGE_PARAM_GAP / SMALL_PARAM_GAP)
    return round(2 * (low + min(1.0, share) * (high - low))) / 2


def stage_plan(f: Facts, assistants: list[Assistant]) -> tuple[list[float], str]:
    """One temperature per stage of a chain (assistants, then the student), and the sentence that says why."""
    if not assistants or not f.teacher_params or not f.student_params:
        return [], ""
    chain = [f.teacher_params, *(a.params for a in assistants), f.student_params]
    ratios = [upper / lower for upper, lower in pairwise(chain)]
    temperatures = [stage_temperature(r) for r in ratios]
    names = [f"assistant_{k}" for k in range(1, len(assistants) + 1)] + ["student"]
    stages = ", ".join(f"{name} {t:g} ({r:.1f}x)" for name, t, r in zip(names, temperatures, ratios, strict=True))
    return temperatures, (f"Temperature per stage: {stages}; each from the stage's own parameter ratio, softer "
                          "targets across wider steps.")


# --- NOT-FOR boundaries ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NotFor:
    """A situation where distillation is the wrong tool: when it applies, and what to use instead."""

    name: str  # one of kdcore.config.BOUNDARY_NAMES
    boundary: str
    instead: str
    when: Callable[[Facts], bool]


NOT_FOR: tuple[NotFor, ...] = (
    NotFor("rule_based", "The teacher is a simple rule-based system: there is no learning gap to bridge.",
           "Transfer the rules directly into the student's system.", lambda f: f.s.rule_based),
    NotFor("different_tasks", "Teacher and student solve different problems.",
           "Use transfer learning: adapt the teacher's representation to the new task and fine-tune it there.",
           lambda f: f.other_task),
    NotFor("real_time", "The student must run faster than the teacher could ever be made to run.",
           "Optimise the architecture for speed (efficient design, architecture search, pruning, quantisation): "
           "distillation transfers what a model knows; it does not make a model fast.", lambda f: f.s.real_time),
    NotFor("needs_new_capabilities", "The student needs capabilities the teacher lacks (or already does better "
           "alone).", "Use curriculum learning, or train on labels for those skills; a teacher cannot pass on "
           "what it lacks.", lambda f: f.s.needs_new_capabilities or (f.performance_ratio is not None and
                                                                     f.performance_ratio < BETTER_ALONE)),
    NotFor("safety_critical", "The system is safety-critical and has no validation framework.",
           "Build robust validation first; distillation can follow once the student can be verified.",
           lambda f: f.s.safety_critical),
    NotFor("interpretability_first", "Interpretability is the first concern.",
           "Use explainable-AI methods; distillation often makes a model harder to interpret.",
           lambda f: f.s.interpretability_first),
)


# --- why: policies and the numbers of each step -------------------------------------------------------
def _policy(f: Facts, gap_branch: Branch) -> str:
    """Which capacity rule the advice followed, and why (see the module docstring)."""
    if gap_branch.id.startswith("perf"):
        by_params = next((b for b in branches(1) if b.id.startswith("params") and
                          _params(_without_perf(f), *_band(b.id))), None)
        if by_params and by_params.outcome != gap_branch.outcome:
            return (f"The parameter ratio ({f.parameter_ratio:.1f}x) alone would say {by_params.outcome}; the "
                    f"performance ratio ({f.performance_ratio:.2f}x) decides, because it measures what the "
                    "student can decode.")
        return "The performance ratio decides the gap; the parameter ratio agrees."
    if gap_branch.id == "params_band":
        return ("Parameters alone leave 2-10x undecided: direct distillation first; train the baseline, and add "
                "one assistant if the performance ratio is 1.5x or more.")
    if gap_branch.id.startswith("params"):
        return "Accuracies unknown: the parameter ratio decides; the performance ratio may refine it."
    if gap_branch.id == "unassessed":
        return "Capacity gap not assessed: give sizes or accuracies to decide it."
    return ""


def _band(branch_id: str) -> tuple[float, float]:
    return {"params_small": (0, SMALL_PARAM_GAP + 1e-9), "params_large": (LARGE_PARAM_GAP, math.inf),
            "params_band": (SMALL_PARAM_GAP, LARGE_PARAM_GAP)}[branch_id]


def _without_perf(f: Facts) -> Facts:
    return Facts(f.teacher_params, f.student_params, f.parameter_ratio, None, f.teacher_modality,
                 f.student_modality, f.teacher_architecture, f.student_architecture, f.needs, f.s)


def _mechanism_policy(f: Facts, mechanism: str) -> str:
    """Where step 3 overrides step 1 or a flag alone, the precedence it followed (module docstring)."""
    if _gap(f) == "similar" and mechanism != "online" and f.performance_ratio is not None:
        return (f"Step 1 alone would say collaborative learning (performance {f.performance_ratio:.2f}x, below "
                f"{SIMILAR_PERFORMANCE:g}x); step 3 decides the mechanism, and learning together needs several "
                f"learners exploring, so this advice is {mechanism}.")
    return ""


def _step3_detail(f: Facts, mechanism: str) -> str:
    """Step 3's numbers: the disagreement with step 1, or the flag that alone does not make it online."""
    notes = []
    if _gap(f) == "similar" and mechanism != "online" and f.performance_ratio is not None:
        notes.append("step 1 alone would say collaborative, which needs several learners exploring")
    if mechanism in ("offline", "progressive"):
        if not f.s.stable_domain:
            notes.append("the domain drifts, but one learner has no peers: keep the teacher, re-distil when it is "
                         "retrained")
        if f.s.several_learners:
            notes.append("several learners, but a proven teacher on a stable domain: each learns from it")
    return "; ".join(notes)


def _detail(step: int, f: Facts, mechanism: str) -> str:
    if step == 1:
        parts = []
        if f.parameter_ratio is not None:
            parts.append(f"parameters {f.teacher_params:,} / {f.student_params:,} = {f.parameter_ratio:.1f}x")
        if f.performance_ratio is not None:
            parts.append(f"performance {f.performance_ratio:.2f}x")
        return "; ".join(parts)
    if step == 3:
        return _step3_detail(f, mechanism)
    if step == 4 and (f.teacher_architecture or f.teacher_modality):
        return (f"{f.teacher_modality or '?'} {f.teacher_architecture or '?'} -> "
                f"{f.student_modality or '?'} {f.student_architecture or '?'}")
    return ""


# --- the recorded rationale ------------------------------------------------------------------------------
SITUATION_FLAGS = ("needs", "proven_teacher", "stable_domain", "several_learners", *BOUNDARY_FLAGS)
SIDE_FLAGS = ("task", "modality")
# The situation's inputs a study cannot measure: recorded with the advice, read back by parse_rationale.
RECORDED_FLAGS = (*SITUATION_FLAGS, *(f"{role}_{key}" for key in SIDE_FLAGS for role in ("teacher", "student")))
LIST_KEYS = ("needs", "boundaries", "accepted")
RECORD_KEYS = ("mechanism", *RECORDED_FLAGS, "boundaries", "accepted")
RECORD_PREFIX = "Situation: "
_SAFE = " ,:/()'_.-"  # left readable in recorded values; ';', '=', '+', '%' and line breaks are escaped


@dataclass
class RecordedAdvice:
    """What an advice recorded in its rationale: enough to re-advise a study and compare."""

    mechanism: str  # the mechanism the advice named
    flags: dict[str, Any]  # RECORDED_FLAGS: the situation's inputs a study cannot measure
    boundaries: list[str]  # BOUNDARY_NAMES that applied when the advice was given
    accepted: list[str] = field(default_factory=list)  # the boundaries acknowledged, distilling anyway


def recorded_flags(s: Situation) -> dict[str, Any]:
    """The situation's inputs that a study cannot measure, by their RECORDED_FLAGS names."""
    flags = {name: getattr(s, name) for name in SITUATION_FLAGS}
    flags["needs"] = list(s.needs)
    for key in SIDE_FLAGS:
        for role in ("teacher", "student"):
            flags[f"{role}_{key}"] = getattr(getattr(s, role), key)
    return flags


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "+".join(quote(str(v), safe=_SAFE) for v in value)
    return "" if value is None else quote(str(value), safe=_SAFE)


def _decode(key: str, text: str) -> Any:
    if key in LIST_KEYS:
        return [unquote(v) for v in text.split("+")] if text else []
    if key in SITUATION_FLAGS:
        if text not in ("yes", "no"):
            raise ValueError(f"{key}: expected yes or no")
        return text == "yes"
    if key.endswith("_modality") and not text:
        return None
    return unquote(text)


def situation_line(advice: Advice, accepted: list[str]) -> str:
    """The rationale's last line: mechanism, recorded flags and boundaries as ``key=value; ...``."""
    values = {"mechanism": advice.mechanism, **recorded_flags(advice.situation), "boundaries": advice.boundaries,
              "accepted": accepted}
    return RECORD_PREFIX + "; ".join(f"{key}={_encode(values[key])}" for key in RECORD_KEYS)


def parse_rationale(text: str | None) -> RecordedAdvice | None:
    """What an advisor-written rationale recorded; None for free text (or a record that does not read back)."""
    if not text or RECORD_PREFIX not in text:
        return None
    items = [item.partition("=") for item in text.rsplit(RECORD_PREFIX, 1)[1].strip().split("; ")]
    if any(not sep for _, sep, _ in items) or [key for key, _, _ in items] != list(RECORD_KEYS):
        return None
    try:
        values = {key: _decode(key, value) for key, _, value in items}
    except ValueError:
        return None
    if not set(values["boundaries"]) | set(values["accepted"]) <= set(BOUNDARY_NAMES):
        return None
    return RecordedAdvice(values["mechanism"], {key: values[key] for key in RECORDED_FLAGS}, values["boundaries"],
                          values["accepted"])


def situation_from_flags(flags: dict[str, Any], teacher: Side | dict[str, Any], student: Side | dict[str, Any],
                         dataset: str | None = None, data: dict[str, Any] | None = None) -> Situation:
    """A situation from recorded flags (RecordedAdvice.flags) and the sides a study measured (models, sizes,
    accuracies) on a dataset or on your ``data``: the recorded task and modality of a side win over the measured
    ones when given."""
    raw: dict[str, Any] = {name: flags[name] for name in SITUATION_FLAGS if name in flags}
    for role, side in (("teacher", teacher), ("student", student)):
        spec = side.model_dump(exclude_none=True) if isinstance(side, Side) else dict(side)
        for key in SIDE_FLAGS:
            if flags.get(f"{role}_{key}") is not None:
                spec[key] = flags[f"{role}_{key}"]
        raw[role] = spec
    return situation(raw | ({"data": data} if data is not None else {"dataset": dataset}))


# --- advise ------------------------------------------------------------------------------------------------
def advise(s: Situation | dict[str, Any]) -> Advice:
    """Walk the four steps for a situation and assemble the advice."""
    s = situation(s) if isinstance(s, dict) else s
    f = facts(s)
    fired = {step: fire(step, f) for step in STEPS}
    gap, mechanism, handling = fired[1].outcome, fired[3].outcome, fired[4].outcome
    knowledge = [KNOWLEDGE_FOR_NEED[n] for n in f.needs]
    if handling == "structural" and "relation" not in knowledge:
        knowledge.append("relation")  # different tasks share structure, not outputs
    method = METHOD_FOR_KNOWLEDGE[knowledge[0]] if len(knowledge) == 1 else "multi"
    n = assistant_count(gap, f.parameter_ratio) if mechanism == "progressive" else 0
    assistants = interpolate_assistants(f, n)
    stage_temperatures, stage_rule = stage_plan(f, assistants)
    handling_text = {
        "paired_alignment": "Train an alignment network on paired samples that maps the student's features into "
                            "the teacher's space, then distill through it.",
        "structural": "Transfer relations between samples (distances, angles, similarities), which do not depend "
                      "on either side's outputs.",
        "adapt": ("Logits need no adaptation; for features, use attention transfer or a learned adapter."
                  if knowledge == ["response"] else
                  "Map features through a learned adapter, or transfer attention maps, which are shape-free."),
        "direct_match": "Match logits and features directly; adapters only where widths differ.",
    }[handling]
    policy = " ".join(p for p in (_policy(f, fired[1]), _mechanism_policy(f, mechanism)) if p)
    return Advice(
        situation=s,
        path=[Fired(step, STEPS[step], b.id, b.rule, b.outcome, _detail(step, f, mechanism))
              for step, b in fired.items()],
        gap=gap, mechanism=mechanism, knowledge=knowledge, method=method, representation=handling_text,
        assistants=assistants, assistant_rule=ASSISTANT_RULE if n else "", chain_rule=chain_rule(f, n),
        temperature=TEMPERATURES[gap], stage_temperatures=stage_temperatures, stage_rule=stage_rule,
        not_for=[Boundary(b.name, b.boundary, b.instead) for b in NOT_FOR if b.when(f)],
        policy=policy, parameter_ratio=f.parameter_ratio, performance_ratio=f.performance_ratio,
    )
