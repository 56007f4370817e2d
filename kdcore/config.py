"""Typed, validated study configuration: the one parser for YAML files, CLI overrides and forms.

Every wrong value becomes a :class:`ConfigError` whose one-line message names the field and
what is allowed, before anything is trained or logged.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kdcore.registry import (
    DATASETS,
    MECHANISMS,
    METHODS,
    MODELS,
    UnknownNameError,
    fitting_models,
    inputs_of,
    model_fits,
)


class ConfigError(ValueError):
    """A configuration problem, reported as one line that names the field."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _registered(registry: Any, name: str) -> str:
    try:
        registry.entry(name)
    except UnknownNameError as err:
        raise ValueError(str(err)) from None
    return name


class DataConfig(Section):
    name: str = Field("digits", description="Registered dataset (kdx list datasets).",
                      json_schema_extra={"registry": "datasets"})
    n_samples: int | None = Field(
        None, ge=100, le=1_000_000,
        description="Samples to generate, for generated datasets only; empty = the dataset's default.",
    )
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of samples held out for model selection.")
    test_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of samples held out for the final numbers.")
    split_seed: int = Field(
        0, ge=0, description="Seed of the split; fixed apart from train.seed so seeds compare on one test set."
    )

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return _registered(DATASETS, value)

    @model_validator(mode="after")
    def _size_allowed(self) -> DataConfig:
        if self.n_samples is not None and not DATASETS.entry(self.name).meta.get("generated", False):
            raise ValueError(f"data.n_samples: dataset {self.name} has a fixed size; leave n_samples empty")
        return self


class ModelConfig(Section):
    name: str = Field("mlp", description="Registered model (kdx list models).",
                      json_schema_extra={"registry": "models"})
    width: int | None = Field(
        None, ge=1, le=4096,
        description="Hidden units (mlp), channels (cnn) or the width knob of the family; empty = the model's default.",
    )
    depth: int | None = Field(
        None, ge=1, le=16,
        description="Hidden layers (mlp), conv blocks (cnn) or blocks per stage; empty = the model's default.",
    )

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return _registered(MODELS, value)

    @model_validator(mode="after")
    def _fixed_size(self) -> ModelConfig:
        if MODELS.entry(self.name).meta.get("fixed_size") and (self.width is not None or self.depth is not None):
            family = MODELS.entry(self.name).meta.get("family")
            hint = f", or use the {family} family to choose them" if family in MODELS else ""
            raise ValueError(f"width: {self.name} has a fixed size; leave width and depth empty{hint}")
        return self


class DistillConfig(Section):
    method: str = Field("kd", description="Registered method that trains the student (kdx list methods).",
                        json_schema_extra={"registry": "methods"})
    mechanism: str = Field("offline", description="How teacher and student are scheduled (kdx list mechanisms).",
                           json_schema_extra={"registry": "mechanisms"})
    temperature: float = Field(
        4.0, gt=0, le=100, description="Softens both distributions; higher shows more dark knowledge."
    )
    alpha: float = Field(
        0.9, ge=0, le=1, description="Weight of the distillation term; 1 - alpha weighs the label loss."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Method-specific parameters.")
    assistants: list[ModelConfig] = Field(
        default_factory=list,
        description="Teacher assistants for the progressive mechanism, from the teacher's side to the student's.",
    )
    stage_temperatures: list[float] = Field(
        default_factory=list,
        description="Progressive only: the temperature of each stage, assistant_1 first and the student last; "
                    "empty = distill.temperature everywhere.",
    )
    stage_params: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Progressive only: distill.params of each stage, assistant_1 first and the student last, e.g. "
                    "other terms per stage for the multi method; empty = distill.params everywhere.",
    )
    skip_to_teacher: bool = Field(
        False, description="Progressive only: every stage also learns from the original teacher, not only from "
                           "the stage above (against degradation along the chain).",
    )
    peers: list[ModelConfig] = Field(
        default_factory=list, max_length=3,
        description="Online only: the models that learn together with the student (1 to 3), each from the others.",
    )
    self_kind: Literal["temporal", "spatial"] = Field(
        "temporal", description="Self only: temporal = born-again generations; spatial = the student's deepest "
                                "exit teaches early exits on its own blocks.",
    )
    generations: int = Field(
        3, ge=1, le=5, description="Self, temporal: born-again generations after the first, each taught by the "
                                   "one before; the last is the student.",
        json_schema_extra={"when": {"self_kind": "temporal"}},
    )
    exit: int | None = Field(
        None, ge=1, le=16, description="Self, spatial: the exit deployed as the student (1 = after the first "
                                       "block); empty = the deepest.",
        json_schema_extra={"when": {"self_kind": "spatial"}},
    )
    teacher_view: str | None = Field(
        None, description="Cross-modal only: the view of the paired inputs the teacher sees, e.g. rgb; "
                          "empty = the dataset's first view.",
    )
    student_view: str | None = Field(
        None, description="Cross-modal only: the view the student sees, e.g. depth; empty = the dataset's last view.",
    )
    align: bool = Field(
        True, description="Cross-modal only: learn an alignment network from the student's features to the "
                          "teacher's on paired samples first; false skips alignment and pairing, to show the failure.",
    )
    align_epochs: int = Field(
        3, ge=1, le=1000, description="Cross-modal, aligned: the first epochs of the student's budget train the "
                                      "alignment alone, before distillation.",
        json_schema_extra={"when": {"align": True}},
    )
    rationale: str | None = Field(
        None, max_length=4000,
        description="Why this mechanism and knowledge type (quality gate 8); kdx advise writes it.",
    )

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        return _registered(METHODS, value)

    @field_validator("mechanism")
    @classmethod
    def _known_mechanism(cls, value: str) -> str:
        return _registered(MECHANISMS, value)

    @model_validator(mode="after")
    def _fields_fit_mechanism(self) -> DistillConfig:
        """A mechanism's own fields (registry meta ``fields``) must keep their defaults under the others."""
        own = MECHANISMS.entry(self.mechanism).meta.get("fields", ())
        for entry in MECHANISMS:
            for name in entry.meta.get("fields", ()):
                if name not in own and getattr(self, name) != type(self).model_fields[name].get_default(
                        call_default_factory=True):
                    raise ValueError(f"distill.{name}: only the {entry.name} mechanism uses it; leave it empty "
                                     f"for {self.mechanism}")
        if "assistants" in own and not self.assistants:
            raise ValueError(f"distill.assistants: the {self.mechanism} mechanism needs at least one assistant, "
                             "e.g. [{name: mlp, width: 128, depth: 2}]")
        if "peers" in own and not self.peers:
            raise ValueError(f"distill.peers: the {self.mechanism} mechanism needs 1 to 3 peers besides the student, "
                             "e.g. [{name: mlp, width: 64, depth: 2}]")
        if self.stage_temperatures:
            stages = len(self.assistants) + 1
            if len(self.stage_temperatures) != stages:
                raise ValueError(f"distill.stage_temperatures: give one per stage of the chain ({stages} here: the "
                                 "assistants, then the student), or leave it empty")
            if not all(0 < value <= 100 for value in self.stage_temperatures):
                raise ValueError("distill.stage_temperatures: each must be > 0 and <= 100")
        if self.stage_params and len(self.stage_params) != len(self.assistants) + 1:
            raise ValueError(f"distill.stage_params: give one per stage of the chain ({len(self.assistants) + 1} "
                             "here: the assistants, then the student), or leave it empty")
        return self

    @model_validator(mode="after")
    def _method_params(self) -> DistillConfig:
        params_model = getattr(METHODS.get(self.method), "Params", None)
        stages = {f"distill.stage_params.{i}": params for i, params in enumerate(self.stage_params)}
        for field, params in {"distill.params": self.params, **stages}.items():
            if params_model is None:
                if params:
                    raise ValueError(f"{field}: method {self.method} takes no extra parameters")
                continue
            try:
                params_model.model_validate(params)
            except ValidationError as err:
                raise ValueError(first_error(err, prefix=field)) from None
        return self


class TrainConfig(Section):
    epochs: int = Field(10, ge=1, le=10_000, description="Epochs for baseline and student (one shared budget).")
    teacher_epochs: int | None = Field(None, ge=1, le=10_000, description="Epochs for the teacher; empty = epochs.")
    batch_size: int = Field(128, ge=2, le=65_536, description="Samples per optimizer step.")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="Optimizer for every role.")
    lr: float = Field(1e-3, gt=0, le=10, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty (decoupled for adamw).")
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum, used by sgd only.")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="Learning-rate schedule over epochs.")
    seed: int = Field(0, ge=0, description="Seed of initialisation and batch order.")
    device: str = Field("auto", description="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps.")
    amp: bool = Field(True, description="Mixed precision on CUDA; ignored elsewhere.")
    threads: int = Field(
        1, ge=1, le=256,
        description="torch CPU threads; results differ between thread counts, so it is part of the run.",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        head, _, index = value.partition(":")
        if head not in {"auto", "cpu", "cuda", "mps"} or (index and (head != "cuda" or not index.isdigit())):
            raise ValueError(f"{value!r} is not a device; allowed: auto, cpu, cuda, cuda:N, mps")
        return value

    def epochs_for(self, role: str) -> int:
        """The teacher may have its own budget; every student role shares ``epochs``."""
        return (self.teacher_epochs or self.epochs) if role == "teacher" else self.epochs


class TrackingConfig(Section):
    experiment: str = Field("kd-explorer", min_length=1, description="MLflow experiment that holds the study.")
    uri: str | None = Field(
        None, description="Tracking URI; empty = $MLFLOW_TRACKING_URI, else ./mlflow.db (SQLite)."
    )
    study_name: str | None = Field(None, description="Name shown for the study; empty = generated.")


class ExperimentConfig(Section):
    """One study: the data, the two architectures, how to distill, how to train, where to log."""

    data: DataConfig = Field(default_factory=DataConfig)
    teacher: ModelConfig = Field(default_factory=lambda: ModelConfig(name="mlp", width=256, depth=3))
    student: ModelConfig = Field(default_factory=lambda: ModelConfig(name="mlp", width=32, depth=1))
    distill: DistillConfig = Field(default_factory=DistillConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _models_fit_data(self) -> ExperimentConfig:
        shape = DATASETS.entry(self.data.name).meta["input_shape"]
        roles = {"teacher": self.teacher, "student": self.student}
        roles |= {f"distill.assistants.{i}": model for i, model in enumerate(self.distill.assistants)}
        roles |= {f"distill.peers.{i}": model for i, model in enumerate(self.distill.peers)}
        for role, model in roles.items():
            if not model_fits(model.name, self.data.name):
                meta = MODELS.entry(model.name).meta
                kind, given = meta.get("inputs", "tensor"), inputs_of(self.data.name)
                needs = f"{kind} inputs" if kind != given else f"{meta['input_rank']}-d inputs"
                gives = f"gives {given} of shape" if kind != given else "gives shape"
                raise ValueError(
                    f"{role}.name: model {model.name} needs {needs} but dataset {self.data.name} {gives} "
                    f"{tuple(shape)}; allowed: {', '.join(fitting_models(self.data.name))}"
                )
        return self

    @model_validator(mode="after")
    def _method_fits_models(self) -> ExperimentConfig:
        check = getattr(METHODS.get(self.distill.method), "check", None)
        if check is not None and not self.distill.stage_params:  # per-stage params: the chain checks each stage
            check(self)  # a ValueError naming the field when a term cannot read these models
        return self

    @model_validator(mode="after")
    def _mechanism_fits(self) -> ExperimentConfig:
        check = MECHANISMS.entry(self.distill.mechanism).meta.get("check")
        if check is not None:
            check(self)  # a ValueError naming the field when the mechanism cannot run this study
        return self

    # --- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())

    def flat(self) -> dict[str, str]:
        """The config as ``section.key -> str`` pairs: the params of every MLflow run."""
        return {key: "" if value is None else str(value) for key, value in _flatten(self.to_dict()).items()}

    def teacher_fingerprint(self, version: str) -> str:
        """Hash of everything that determines the trained teacher, so identical teachers are reused.

        Device, AMP and thread count are left out: they change the last bits, not the teacher.
        """
        train = self.train.model_dump(mode="json", exclude={"device", "amp", "threads", "teacher_epochs"})
        train["epochs"] = self.train.epochs_for("teacher")
        payload = {"version": version, "data": self.data.model_dump(mode="json"),
                   "teacher": self.teacher.model_dump(mode="json"), "train": train}
        if self.distill.mechanism == "cross_modal":  # a teacher of one view is not a teacher of another
            payload["view"] = self.distill.teacher_view or next(iter(DATASETS.entry(self.data.name).meta["views"]))
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def first_error(err: ValidationError, prefix: str = "") -> str:
    """One line for the first problem: ``field.path: what is wrong (got value)``."""
    return _format_error(err.errors()[0], prefix)


def _format_error(first: Any, prefix: str = "") -> str:
    loc = ".".join(str(part) for part in first["loc"])
    loc = ".".join(p for p in (prefix, loc) if p)
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif "input" in first and first["type"] not in {"value_error", "missing"} and not isinstance(
        first["input"], dict
    ):
        msg = f"{msg} (got {first['input']!r})"
    if re.match(r"^[a-z_]+\.[a-z_0-9.]+: ", msg):  # a cross-field message already names its field
        return msg
    own = re.match(r"^([a-z_]+): (.*)$", msg)  # a section's own message names a field inside it
    if own and loc and first["type"] == "value_error":
        return f"{loc}.{own[1]}: {own[2]}"
    return f"{loc}: {msg}" if loc else msg


def _allowed_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    """Keys allowed at ``path`` inside ``model`` (for the unknown-key message)."""
    for part in path:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def field_errors(raw: dict[str, Any]) -> dict[str, str]:
    """Every problem of a raw config, keyed by dotted field name (for inline form errors)."""
    try:
        ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        errors: dict[str, str] = {}
        for item in err.errors():
            line = _format_error(item)
            field, _, message = line.partition(": ")
            errors.setdefault(field if message else "", message or line)
        return errors
    return {}


def validate(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a raw mapping into an :class:`ExperimentConfig`, or raise a one-line ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        message = first_error(err)
        if first["type"] == "extra_forbidden":
            allowed = _allowed_keys(ExperimentConfig, [str(p) for p in first["loc"][:-1]])
            message += f"; allowed: {', '.join(allowed)}"
        raise ConfigError(message) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a raw config mapping."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected section.key=value, e.g. distill.temperature=8")
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {part} is a value, not a section")
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            node[parts[-1]] = text
    return raw


def load_raw(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a mapping (an empty file is the default config)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {str(path)!r}: invalid YAML{where}") from None
    return raw or {}


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a YAML file (or the defaults), apply CLI overrides and validate."""
    raw = load_raw(path) if path is not None else {}
    return validate(apply_overrides(raw, list(overrides or [])))


def config_from_yaml(text: str) -> ExperimentConfig:
    """Validate a config held as YAML text (e.g. the ``config.yaml`` artifact of a study)."""
    return validate(yaml.safe_load(text) or {})
