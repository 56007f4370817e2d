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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kdcore.config import first_error
from kdcore.registry import DATASETS, MECHANISMS, METHODS, MODELS, UnknownNameError, model_fits

# --- thresholds (the survey's numbers, named) -------------------------------------------------------
SMALL_PARAM_GAP = 2.0  # teacher at most 2x the student's parameters: a small gap
LARGE_PARAM_GAP = 10.0  # teacher 10x or more: a large gap
SIMILAR_PERFORMANCE = 1.1  # performance ratio below this: similar, learn together
ONE_ASSISTANT_PERFORMANCE = 1.5  # from here, one teacher assistant bridges the gap
PROGRESSIVE_PERFORMANCE = 3.0  # from here, several steps
MAX_STAGE_GAP = 5.0  # assistants are added until neighbouring stages differ by at most 5x in parameters
MAX_ASSISTANTS = 3
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
    """Teacher or student: a registered model (with a size preset or width/depth) or a parameter count."""

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
        preset = MODELS.entry(self.model).meta.get("sizes", {}).get(self.size or "medium", (64, 2))
        return self.width or preset[0], self.depth or preset[1]


class Situation(BaseModel):
    """What the advisor needs to know; everything but the two sides has a sensible default."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(None, description="Registered dataset; sizes models and makes the config runnable.")
    teacher: Side
    student: Side
    needs: list[Need] = Field(default_factory=lambda: ["decisions"], min_length=1,
                              description="What the task needs: decisions, patterns, structure, or several.")
    proven_teacher: bool = Field(True, description="A trained, trusted teacher exists.")
    stable_domain: bool = Field(True, description="The data does not drift while the student learns.")
    several_learners: bool = Field(False, description="Several learners explore together (no single expert).")
    rule_based: bool = Field(False, description="The teacher is a simple rule-based system.")
    real_time: bool = Field(False, description="A hard latency budget the student must meet.")
    needs_new_capabilities: bool = Field(False, description="The student must do what the teacher cannot.")
    safety_critical: bool = Field(False, description="Safety-critical use without a validation framework.")
    interpretability_first: bool = Field(False, description="Interpretability matters more than accuracy.")

    @field_validator("dataset")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                DATASETS.entry(value)
            except UnknownNameError as err:
                raise ValueError(str(err)) from None
        return value


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


def _dataset_for(s: Situation) -> str | None:
    """The situation's dataset, else the first registered one both models accept (to count parameters)."""
    if s.dataset is not None:
        return s.dataset
    models = [side.model for side in (s.teacher, s.student) if side.model]
    fitting = [e.name for e in DATASETS if all(model_fits(m, e.name) for m in models)]
    return fitting[0] if fitting else None


def parameters(model: str, width: int, depth: int, dataset: str) -> int:
    """Parameter count of a registered model at a size, for the dataset's input shape and classes."""
    from kdcore.models.base import build_model, count_parameters  # torch only when sizes are needed

    meta = DATASETS.entry(dataset).meta
    if MODELS.entry(model).meta.get("fixed_size"):  # a named variant: its own size, whatever was asked
        width = depth = None  # type: ignore[assignment]
    spec = type("Spec", (), {"name": model, "width": width, "depth": depth})()
    return count_parameters(build_model(spec, meta["input_shape"], meta["num_classes"]))


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
    return parameters(side.model, *shape, dataset)  # type: ignore[arg-type]


def facts(s: Situation) -> Facts:
    dataset = _dataset_for(s)
    t_params, s_params = _side_params(s.teacher, dataset), _side_params(s.student, dataset)
    p_ratio = t_params / s_params if t_params and s_params else None
    t_acc, s_acc = s.teacher.accuracy, s.student.accuracy
    perf = t_acc / s_acc if t_acc is not None and s_acc else None
    modality = DATASETS.entry(s.dataset).meta.get("modality") if s.dataset else None

    def family(side: Side) -> str | None:
        return side.architecture or (MODELS.entry(side.model).meta.get("family", side.model) if side.model else None)

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


TREE: tuple[Branch, ...] = (
    # 1. capacity gap: the performance ratio decides when known, else the parameter ratio
    Branch(1, "peers", "Peer learning", "several learners explore together", "similar",
           lambda f: f.s.several_learners),
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
    Branch(3, "no_teacher", "No teacher", "no proven external teacher is available", "self",
           lambda f: not f.s.proven_teacher),
    Branch(3, "explore", "Exploration", "several learners explore, the domain drifts, or teacher and student "
           "perform alike", "online",
           lambda f: f.s.several_learners or not f.s.stable_domain or _perf(f, 0, SIMILAR_PERFORMANCE)),
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


@dataclass
class Boundary:
    """A "not for" boundary: distillation is the wrong tool here, and what to use instead."""

    boundary: str
    instead: str


@dataclass
class Advice:
    """The tree's answer: the path, what to run, and why."""

    situation: Situation
    path: list[Fired]
    gap: str
    mechanism: str
    knowledge: list[str]
    method: str
    representation: str
    assistants: list[Assistant]
    assistant_rule: str
    temperature: tuple[float, float, float]
    warnings: list[Boundary]
    policy: str
    parameter_ratio: float | None
    performance_ratio: float | None

    @property
    def rationale(self) -> str:
        """The advice in a few sentences: recorded on a study as its justification (quality gate 8)."""
        steps = " ".join(f"{p.step}. {p.question}: {p.rule}" + (f" ({p.detail})" if p.detail else "") +
                         f" -> {p.outcome}." for p in self.path)
        chain = ""
        if self.assistants:
            sizes = ", ".join(_assistant_label(a) for a in self.assistants)
            chain = f" Assistants: {sizes}."
        low, high, _ = self.temperature
        return (f"Advice: {self.mechanism} distillation of {'+'.join(self.knowledge)} knowledge "
                f"(method {self.method}). {steps}{chain} Temperature {low:g}-{high:g}. {self.policy}").strip()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["situation"] = self.situation.model_dump(mode="json")
        out["rationale"] = self.rationale
        return out

    def runnable(self) -> str | None:
        """Why ``to_config`` cannot build this advice, or None when it can."""
        try:
            self.to_config()
        except AdviceError as err:
            return str(err).removeprefix("advice: ")
        return None

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
        if self.situation.dataset is None:
            return "dataset: name a registered dataset to train on"
        if any(a.name is None for a in self.assistants):
            return "assistants: the teacher is not a registered model, so assistants cannot be built"
        return None

    def to_config(self, base: dict[str, Any] | None = None) -> Any:
        """A runnable :class:`~kdcore.config.ExperimentConfig` for this advice, on top of ``base`` (a raw config).

        Raises :class:`AdviceError` naming what is missing when the advice cannot run in kdcore today.
        """
        from kdcore.config import ConfigError, validate

        problem = self._missing()
        if problem:
            raise AdviceError(f"advice: {problem}")
        s = self.situation
        raw = {key: dict(value) if isinstance(value, dict) else value for key, value in (base or {}).items()}
        for role in ("teacher", "student"):
            side: Side = getattr(s, role)
            width, depth = side.shape()  # type: ignore[misc]
            if MODELS.entry(side.model).meta.get("fixed_size"):  # type: ignore[arg-type]
                width = depth = None
            raw[role] = {"name": side.model, "width": width, "depth": depth}
        data = raw.setdefault("data", {})
        if data.get("name") != s.dataset:
            raw["data"] = {"name": s.dataset}
        distill = raw.setdefault("distill", {})
        distill.update(method=self.method, mechanism=self.mechanism, temperature=self.temperature[2],
                       assistants=[{"name": a.name, "width": a.width, "depth": a.depth} for a in self.assistants],
                       rationale=self.rationale[:4000], params={})
        for key in MECHANISM_FIELDS:  # the base's mechanism-specific values belong to its own mechanism
            distill.pop(key, None)
        if self.mechanism == "online":  # the teacher's side of the situation becomes the student's peer
            distill["peers"] = [raw["teacher"]]
        if self.mechanism == "self":  # born-again generations (distill.self_kind: spatial for early exits)
            distill["self_kind"] = "temporal"
        if self.mechanism == "cross_modal":  # the sides' modalities are the dataset's views
            views = DATASETS.entry(s.dataset).meta.get("views", {})
            distill |= {f"{role}_view": side.modality for role, side in (("teacher", s.teacher), ("student", s.student))
                        if side.modality in views}
        if self.method == "multi" and all(_family(getattr(s, role).model) == "transformer"
                                          for role in ("teacher", "student")):
            distill |= transformer_terms(self.mechanism, len(self.assistants))
        try:
            return validate(raw)
        except ConfigError as err:
            raise AdviceError(f"advice: {err}") from None


MECHANISM_FIELDS = ("stage_temperatures", "stage_params", "skip_to_teacher", "peers", "self_kind", "generations",
                    "exit", "teacher_view", "student_view", "align", "align_epochs")
# Transformer to transformer: the first stage learns the next-token distribution and where the teacher
# attends; later stages, between models of closer size, also match hidden states (MiniLM-style chains).
FIRST_STAGE_TERMS = [{"term": "kd"}, {"term": "attention_pattern"}]
LATER_STAGE_TERMS = [{"term": "kd"}, {"term": "hint", "student_layer": "last"}, {"term": "attention_pattern"}]


def transformer_terms(mechanism: str, assistants: int) -> dict[str, Any]:
    """The multi method's terms for a transformer pair: per stage for a chain, the first stage's otherwise."""
    if mechanism == "progressive" and assistants:
        return {"stage_params": [{"terms": FIRST_STAGE_TERMS}] + [{"terms": LATER_STAGE_TERMS}] * assistants}
    return {"params": {"terms": FIRST_STAGE_TERMS}}


def _assistant_label(a: Assistant) -> str:
    name = f"{a.name} w{a.width} d{a.depth}" if a.name else "a model"
    return f"{name} (~{a.params:,} parameters)"


def assistant_count(gap: str, parameter_ratio: float | None) -> int:
    """How many assistants a gap calls for: one for 1.5-3x, else enough for each stage to stay within 5x."""
    if gap == "one_assistant":
        return 1
    if gap != "progressive":
        return 0
    by_params = 1
    if parameter_ratio and parameter_ratio > 1:
        by_params = math.ceil(math.log(parameter_ratio) / math.log(MAX_STAGE_GAP)) - 1
    return min(MAX_ASSISTANTS, max(2 if parameter_ratio is None else 1, by_params))


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
        t_width, t_depth = teacher.shape()  # type: ignore[misc]
        s_depth = student.shape()[1] if student.model and _family(student.model) == _family(model) else 1  # type: ignore[index]
        depth = max(1, round(t_depth + share * (s_depth - t_depth)))
        width = _width_for(model, depth, dataset, target, t_width)
        out.append(Assistant(model, width, depth, parameters(model, width, depth, dataset)))
    return out


def _family(model: str) -> str:
    return MODELS.entry(model).meta.get("family", model)


def _width_for(model: str, depth: int, dataset: str, target: float, ceiling: int) -> int:
    """The width whose parameter count is closest to ``target`` (in ratio), by bisection over widths."""
    low, high = 1, max(ceiling, 2)
    while high - low > 1:
        middle = (low + high) // 2
        if parameters(model, middle, depth, dataset) < target:
            low = middle
        else:
            high = middle
    return min((low, high), key=lambda w: abs(math.log(parameters(model, w, depth, dataset) / target)))


BOUNDARIES: tuple[tuple[str, Callable[[Facts], bool], str], ...] = (
    ("The teacher is a simple rule-based system: there is no learning gap to bridge.",
     lambda f: f.s.rule_based, "Transfer the rules directly."),
    ("Teacher and student solve different problems.", lambda f: f.other_task,
     "Use transfer learning (adapt the teacher's representation to the new task)."),
    ("A hard real-time budget the student must meet.", lambda f: f.s.real_time,
     "Use model optimisation first (pruning, quantisation, architecture search); distillation keeps accuracy, "
     "it does not guarantee speed."),
    ("The student needs capabilities the teacher lacks.",
     lambda f: f.s.needs_new_capabilities or (f.performance_ratio is not None and f.performance_ratio < 1),
     "Use curriculum learning or train on labels for those skills; a teacher cannot pass on what it lacks."),
    ("Safety-critical use without a validation framework.", lambda f: f.s.safety_critical,
     "Build robust validation first; distillation can follow."),
    ("Interpretability is the first concern.", lambda f: f.s.interpretability_first,
     "Use explainable-AI methods; distillation often makes a model harder to interpret."),
)


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


def _detail(step: int, f: Facts) -> str:
    if step == 1:
        parts = []
        if f.parameter_ratio is not None:
            parts.append(f"parameters {f.teacher_params:,} / {f.student_params:,} = {f.parameter_ratio:.1f}x")
        if f.performance_ratio is not None:
            parts.append(f"performance {f.performance_ratio:.2f}x")
        return "; ".join(parts)
    if step == 4 and (f.teacher_architecture or f.teacher_modality):
        return (f"{f.teacher_modality or '?'} {f.teacher_architecture or '?'} -> "
                f"{f.student_modality or '?'} {f.student_architecture or '?'}")
    return ""


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
    return Advice(
        situation=s,
        path=[Fired(step, STEPS[step], b.id, b.rule, b.outcome, _detail(step, f)) for step, b in fired.items()],
        gap=gap, mechanism=mechanism, knowledge=knowledge, method=method, representation=handling_text,
        assistants=interpolate_assistants(f, n), assistant_rule=ASSISTANT_RULE if n else "",
        temperature=TEMPERATURES[gap],
        warnings=[Boundary(text, instead) for text, when, instead in BOUNDARIES if when(f)],
        policy=_policy(f, fired[1]), parameter_ratio=f.parameter_ratio, performance_ratio=f.performance_ratio,
    )
