"""Typed, validated study configuration: the one parser for YAML files, CLI overrides and forms.

Every wrong value becomes a :class:`ConfigError` whose one-line message names the field and
what is allowed, before anything is trained or logged.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import reprlib
import types
import unicodedata
from pathlib import Path
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from kdcore.boundaries import BOUNDARY_NAMES
from kdcore.digest import content_digest
from kdcore.registry import (
    DATASETS,
    MECHANISMS,
    METHODS,
    MODELS,
    UnknownNameError,
    data_meta,
    fitting_models,
    inputs_of,
    model_fits,
)

# What MLflow stores (mlflow/utils/validation.py and its SQL schema): longer values are refused or cut.
EXPERIMENT_CHARS = 500  # MAX_EXPERIMENT_NAME_LENGTH
RUN_NAME_CHARS = 250  # runs.name is VARCHAR(250) in MLflow's SQL stores (PostgreSQL and MySQL enforce it)
PARAM_VALUE_CHARS = 6000  # MAX_PARAM_VAL_LENGTH; every flattened config value is logged as a param
MAX_SEED = 1_000_000_000  # scikit-learn takes seeds below 2**32, torch's batch order seed * 100_003
SECTIONS = "a mapping of sections (data, teacher, student, distill, train, tracking)"
MAX_EXTRA_TEACHERS = 4  # distill.teachers: each is trained before the student, so five teachers in all at most


def is_teacher(role: str) -> bool:
    """``teacher`` (the teacher) or ``teacher_k`` (the k-th of several diverse teachers, k >= 2)."""
    head, _, number = role.partition("_")
    return head == "teacher" and (not number or number.isdigit())


class ConfigError(ValueError):
    """A configuration problem, reported as one line that names the field."""


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the scalar type a field holds, whether it holds a list of them), through ``X | None``."""
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    if get_origin(annotation) in (Union, types.UnionType) and len(args) == 1:
        return _unwrap(args[0])
    if get_origin(annotation) is list:
        return args[0], True
    return annotation, False


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are re-validated, numbers
    are finite, and YAML's ``true`` is not the number 1 (nor 1 a ``true``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        kind, listed = _unwrap(cls.model_fields[str(info.field_name)].annotation)
        for item in value if listed and isinstance(value, list) else [value]:
            problem = _mixup(kind, item)
            if problem is not None:
                raise ValueError(problem)
        return value


def _mixup(kind: Any, value: Any) -> str | None:
    """The complaint when a bool stands for a number or a number for a bool (pydantic's lax mode takes both)."""
    if kind in (int, float) and isinstance(value, bool):
        return f"Input should be {'an integer' if kind is int else 'a number'}, not {str(value).lower()}"
    if kind is bool and isinstance(value, int | float) and not isinstance(value, bool):
        return f"Input should be true or false, not a number (got {_short(value)})"
    return None


def _printable(value: str, limit: int | None = None, why: str = "") -> str:
    """``value`` unless it holds control characters or exceeds ``limit`` characters (``why`` says whose)."""
    if limit is not None and len(value) > limit:
        raise ValueError(f"String should have at most {limit} characters, {why} (got {len(value)})")
    bad = next((char for char in value if unicodedata.category(char) == "Cc"), None)
    if bad is not None:
        raise ValueError(f"control character {bad!r} at position {value.index(bad)}; use printable text")
    return value


def _registered(registry: Any, name: str) -> str:
    try:
        registry.entry(name)
    except UnknownNameError:
        raise ValueError(f"unknown {registry.kind} {_short(name)}; allowed: {', '.join(registry.names())}") from None
    return name


# The fields only data sources take, and their values when unused (left out of params and fingerprints).
DATA_SOURCE_DEFAULTS: dict[str, Any] = {
    "path": None, "target": None, "columns": [], "paired_path": None, "shifted_path": None, "shift": None,
    "image_size": None, "augment": [], "stream": None, "tokenizer": None, "max_length": 64,
}


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
        0, ge=0, le=MAX_SEED,
        description="Seed of the split; fixed apart from train.seed so seeds compare on one test set.",
    )

    path: str | None = Field(
        None, max_length=1000,
        description="Data sources (imagefolder, csv, parquet, text, hf_disk): the folder or file to read.")
    target: str | None = Field(
        None, max_length=200,
        description="csv, parquet, hf_disk: the label column; empty = 'label'.")
    columns: list[str] = Field(
        default_factory=list,
        description="csv, parquet, hf_disk: the input columns (numbers, or one text column); empty = every other "
                    "column.")
    paired_path: str | None = Field(
        None, max_length=1000,
        description="imagefolder: a second folder with the same image files as another sensor sees them (e.g. "
                    "depth beside RGB); the two become the views of cross-modal distillation, named after the "
                    "folders.")
    shifted_path: str | None = Field(
        None, max_length=1000,
        description="Data sources: a folder or file like path whose inputs come from another distribution (for "
                    "gate 5); empty = a corruption of the test split (data.shift).")
    shift: str | None = Field(
        None, max_length=40,
        description="Data sources without shifted_path: the corruption of the shifted test split: noise, blur, "
                    "brightness (images), noise (tables), token_dropout (text); empty = the modality's first.")
    image_size: int | None = Field(
        None, ge=4, le=1024,
        description="imagefolder, hf_disk images: resize every image to this side; empty = keep the images' own "
                    "size, which must then be one size.")
    augment: list[Literal["crop", "flip"]] = Field(
        default_factory=list,
        description="imagefolder, hf_disk images: random crop (4-pixel padding) and horizontal flip of training "
                    "images; the teacher then runs live, never from its cache.")
    stream: bool | None = Field(
        None,
        description="Data sources: read training batches from disk instead of memory; empty = when the decoded "
                    "inputs exceed 1 GiB.")
    tokenizer: str | None = Field(
        None, max_length=1000,
        description="text, and text columns: a Hugging Face tokenizer folder or hub id; empty = the teacher's when "
                    "it is name hf, else characters.")
    max_length: int = Field(64, ge=4, le=4096,
                            description="Text: tokens per sequence.")

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return _registered(DATASETS, value)

    @model_serializer(mode="wrap")
    def _without_unused_source_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Built-in datasets are written as before data sources existed: the same YAML, params and teacher
        fingerprints."""
        data = handler(self)
        for key, unused in DATA_SOURCE_DEFAULTS.items():
            if key in data and data[key] == unused:
                del data[key]
        return data

    @model_validator(mode="after")
    def _size_allowed(self) -> DataConfig:
        if self.n_samples is not None and not DATASETS.entry(self.name).meta.get("generated", False):
            raise ValueError(f"data.n_samples: dataset {self.name} has a fixed size; leave n_samples empty")
        return self

    @model_validator(mode="after")
    def _source_fields(self) -> DataConfig:
        """A data source needs a path that exists; a built-in dataset takes none of the source fields."""
        if not DATASETS.entry(self.name).meta.get("source"):
            for key, unused in DATA_SOURCE_DEFAULTS.items():
                if getattr(self, key) != unused:
                    sources = ", ".join(e.name for e in DATASETS if e.meta.get("source"))
                    raise ValueError(f"data.{key}: only a data source takes it ({sources}); {self.name} is built in")
            return self
        for key in ("path", "paired_path", "shifted_path"):
            value = getattr(self, key)
            if key == "path" and not value:
                raise ValueError(f"data.path: dataset {self.name} reads your files; give the folder or file")
            if value and not Path(value).expanduser().exists():
                raise ValueError(f"data.{key}: no file or folder {value!r}")
        return self


CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")  # kdcore.models.checkpoint reads these


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

    path: str | None = Field(
        None, max_length=1000,
        description="Model sources: where the model comes from (import: package.module:callable; hf: a folder or hub "
                    "id; timm, torchvision: the model name).")
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Model sources: keyword arguments of the factory (import, timm, torchvision) or config overrides "
                    "(hf).")
    features: dict[str, str] = Field(
        default_factory=dict,
        description="Model sources: feature name -> submodule whose output it is, e.g. {penultimate: layer4}.")
    checkpoint: str | None = Field(
        None, max_length=1000,
        description="Weights to start from: a .safetensors file or a PyTorch state dict (.pt, .pth, .bin) of this "
                    "architecture; empty = fresh weights.")
    train: bool = Field(
        True, description="false: use the checkpoint's weights as they are, evaluated and never trained (teachers "
                          "only).")

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return _registered(MODELS, value)

    @field_validator("checkpoint")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.lower().endswith(CHECKPOINT_SUFFIXES):
            raise ValueError(f"{value!r} is not a checkpoint file; allowed: "
                             f"{', '.join(CHECKPOINT_SUFFIXES)}")
        if not Path(value).expanduser().is_file():
            raise ValueError(f"no file {value!r}")
        return value

    @model_serializer(mode="wrap")
    def _without_unused_weights(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Fresh, trained models (most) are written as before these fields existed: the same YAML, params and
        teacher fingerprints."""
        data = handler(self)
        for key, unused in (("path", None), ("kwargs", {}), ("features", {}), ("checkpoint", None), ("train", True)):
            if key in data and data[key] == unused:
                del data[key]
        return data

    @model_validator(mode="after")
    def _source_fields(self) -> ModelConfig:
        """``path``, ``kwargs`` and ``features`` belong to model sources (``import``); a source needs its path."""
        meta = MODELS.entry(self.name).meta
        if not meta.get("source"):
            for key in ("path", "kwargs", "features"):
                if getattr(self, key):
                    sources = ", ".join(e.name for e in MODELS if e.meta.get("source"))
                    raise ValueError(f"{key}: only a model source takes it ({sources}); {self.name} is built in")
        elif not self.path:
            raise ValueError(f"path: model {self.name} needs one: {meta['path_help']}")
        elif "path_pattern" in meta and not re.fullmatch(meta["path_pattern"], self.path):
            raise ValueError(f"path: {meta['path_help']} (got {self.path!r})")
        for name in self.features:
            if not re.fullmatch(r"penultimate|block[1-9][0-9]*", name):
                raise ValueError(f"features: {name!r} is not a feature name; allowed: penultimate, block1, block2, ...")
        return self

    @model_validator(mode="after")
    def _as_is_needs_weights(self) -> ModelConfig:
        """A model used as it is needs trained weights: a checkpoint, or a source's own (a Hugging Face folder)."""
        own = MODELS.entry(self.name).meta.get("pretrained")
        if not self.train and self.checkpoint is None and not (own and own(self)):
            raise ValueError("train: false uses a model as it is, so it needs a checkpoint (or, name hf, the "
                             "folder's own weights without width, depth or kwargs)")
        return self

    @model_validator(mode="after")
    def _fixed_size(self) -> ModelConfig:
        if MODELS.entry(self.name).meta.get("fixed_size") and (self.width is not None or self.depth is not None):
            family = MODELS.entry(self.name).meta.get("family")
            hint = f", or use the {family} family to choose them" if family in MODELS else ""
            raise ValueError(f"width: {self.name} has a fixed size; leave width and depth empty{hint}")
        return self


BoundaryName = Literal["rule_based", "different_tasks", "real_time", "needs_new_capabilities", "safety_critical",
                       "interpretability_first"]


class DistillConfig(Section):
    method: str = Field("kd", description="Registered method that trains the student (kdx list methods).",
                        json_schema_extra={"registry": "methods"})
    mechanism: str = Field("offline", description="How teacher and student are scheduled (kdx list mechanisms).",
                           json_schema_extra={"registry": "mechanisms"})
    temperature: float = Field(
        4.0, gt=0, le=100, description="Softens both distributions; higher shows more dark knowledge."
    )
    alpha: float = Field(
        0.9, ge=0, le=1, description="Weight of the response (logit) terms; 1 - alpha weighs the label loss beside "
                                     "them. Feature and relation terms have their own weights."
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
    assistant_ensemble: int = Field(
        1, ge=1, le=5,
        description="Progressive only: models trained per assistant stage; the stage below learns from their "
                    "averaged softened outputs (against degradation along the chain); 1 = a single assistant.",
    )
    teachers: list[ModelConfig] = Field(
        default_factory=list, max_length=MAX_EXTRA_TEACHERS,
        description="Offline only: further teachers beside the teacher (0 to 4), each trained with its own seed; "
                    "the student learns from their combination (diverse teachers, against overconfidence).",
    )
    teacher_weights: list[float] = Field(
        default_factory=list,
        description="Offline only: the weight of each teacher, the teacher first, then distill.teachers "
                    "(each > 0, normalised to sum to 1); empty = equal weights.",
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
    accepted_boundaries: list[BoundaryName] = Field(
        default_factory=list, max_length=len(BOUNDARY_NAMES),
        description="NOT-FOR boundaries the study goes ahead despite, acknowledged with kdx advise "
                    "--accept-boundary (quality gate 8 fails a study run against an unacknowledged one).",
    )
    label_smoothing: float = Field(
        0.0, ge=0, lt=1,
        description="Share of each hard label's mass spread over every class in the student's label loss "
                    "(a fix for overconfidence); 0 = none.",
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
        if self.teacher_weights:
            count = len(self.teachers) + 1
            if len(self.teacher_weights) != count:
                raise ValueError(f"distill.teacher_weights: give one per teacher ({count} here: the teacher, then "
                                 "distill.teachers), or leave it empty for equal weights")
            if not all(value > 0 for value in self.teacher_weights):
                raise ValueError(f"distill.teacher_weights: each must be > 0 (got {_short(self.teacher_weights)})")
        if self.stage_params and len(self.stage_params) != len(self.assistants) + 1:
            raise ValueError(f"distill.stage_params: give one per stage of the chain ({len(self.assistants) + 1} "
                             "here: the assistants, then the student), or leave it empty")
        return self

    def for_plain_labels(self) -> DistillConfig:
        """These settings for a model trained on the labels outside any distillation (a teacher, the baseline):
        no label smoothing, so the baseline stays the student trained alone, the reference a fix is judged by."""
        return self.model_copy(update={"label_smoothing": 0.0})

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
                valid = params_model.model_validate(params)
            except ValidationError as err:
                raise ValueError(first_error(err, prefix=field)) from None
            try:  # strict mode finds where a bool stands for a number or a number for a bool
                params_model.model_validate(params, strict=True)
            except ValidationError as err:
                for item in err.errors():
                    problem = _mixup(STRICT_TYPES.get(item["type"]), item.get("input"))
                    if problem is not None:
                        raise ValueError(f"{'.'.join([field, *map(_key, item['loc'])])}: {problem}") from None
            infinite = _non_finite(valid.model_dump(), field)
            if infinite is not None:
                raise ValueError(f"{infinite[0]}: Input should be a finite number (got {infinite[1]})")
        return self


STRICT_TYPES = {"int_type": int, "float_type": float, "bool_type": bool}  # strict-mode error -> expected type


def _non_finite(tree: Any, path: str) -> tuple[str, float] | None:
    """The first NaN or infinity inside validated method parameters, with its dotted path."""
    if isinstance(tree, float) and not math.isfinite(tree):
        return path, tree
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        found = _non_finite(value, f"{path}.{key}")
        if found is not None:
            return found
    return None


class TrainConfig(Section):
    epochs: int = Field(10, ge=1, le=10_000, description="Epochs for baseline and student (one shared budget).")
    teacher_epochs: int | None = Field(None, ge=1, le=10_000, description="Epochs for the teacher; empty = epochs.")
    batch_size: int = Field(128, ge=2, le=65_536, description="Samples per optimizer step.")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="Optimizer for every role.")
    lr: float = Field(1e-3, gt=0, le=10, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty (decoupled for adamw).")
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum, used by sgd only.")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="Learning-rate schedule over epochs.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of initialisation and batch order.")
    device: str = Field("auto", description="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps.")
    amp: bool = Field(True, description="Mixed precision on CUDA; ignored elsewhere.")
    threads: int = Field(
        1, ge=1, le=256,
        description="torch CPU threads; results differ between thread counts, so it is part of the run.",
    )
    compile: bool = Field(
        False,
        description="torch.compile the trained models' forward (and a teacher that runs live); pays on CUDA for "
                    "long runs, after seconds to minutes of compiling; the CPU needs a C++ compiler.",
    )
    channels_last: bool | None = Field(
        None,
        description="Image inputs (4-d) and convolution weights in channels_last memory format; empty = on CUDA "
                    "for image inputs, off elsewhere.",
    )
    checkpoint_every_s: float = Field(
        60.0, ge=0, le=86_400,
        description="Seconds between a role's checkpoints (always written after its last epoch); a resume "
                    "repeats at most this much training; 0 = after every epoch.",
    )
    checkpoint_every_epochs: int | None = Field(
        None, ge=1, le=10_000,
        description="Write a role's checkpoint every this many epochs instead of by time; empty = by time.",
    )
    cache_gib: float = Field(
        1.0, ge=0, le=1024,
        description="Cap on a teacher's cached outputs (on the whole training split), in GiB: kept on the training "
                    "device when they fit there, else in CPU memory; beyond it the teacher runs on every batch; "
                    "0 = never cache.",
    )

    # How a run is carried out, never what it trains: no fingerprint holds them, and siblings may differ in them.
    RUNTIME: ClassVar[tuple[str, ...]] = ("checkpoint_every_s", "checkpoint_every_epochs", "cache_gib")
    # Other kernels, so maybe other numbers; newer than the fingerprints, which hold them only when set away from
    # their defaults, so that every fingerprint made before them stays as it was.
    NUMERIC_IF_SET: ClassVar[tuple[str, ...]] = ("compile", "channels_last")

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        head, _, index = value.partition(":")
        if head not in {"auto", "cpu", "cuda", "mps"} or (index and (head != "cuda" or not index.isdigit())):
            raise ValueError(f"{value!r} is not a device; allowed: auto, cpu, cuda, cuda:N, mps")
        return value

    def epochs_for(self, role: str) -> int:
        """The teachers (``teacher``, ``teacher_2``, ...) may have their own budget; every student role shares
        ``epochs``."""
        return (self.teacher_epochs or self.epochs) if is_teacher(role) else self.epochs


class TrackingConfig(Section):
    experiment: str = Field("kd-explorer", min_length=1, description="MLflow experiment that holds the study.")
    uri: str | None = Field(
        None, description="Tracking URI; empty = $MLFLOW_TRACKING_URI, else ./mlflow.db (SQLite)."
    )
    study_name: str | None = Field(None, description="Name shown for the study; empty = generated.")

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("String should not be blank; name the MLflow experiment, e.g. kd-explorer")
        return _printable(value, EXPERIMENT_CHARS, "MLflow's limit for experiment names")

    @field_validator("study_name")
    @classmethod
    def _study_name(cls, value: str | None) -> str | None:
        return None if value is None else _printable(value, RUN_NAME_CHARS, "MLflow's limit for run names")

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return None if value is None else _printable(value)


class ExperimentConfig(Section):
    """One study: the data, the two architectures, how to distill, how to train, where to log."""

    data: DataConfig = Field(default_factory=DataConfig)
    teacher: ModelConfig = Field(default_factory=lambda: ModelConfig(name="mlp", width=256, depth=3))
    student: ModelConfig = Field(default_factory=lambda: ModelConfig(name="mlp", width=32, depth=1))
    distill: DistillConfig = Field(default_factory=DistillConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    def named_models(self) -> dict[str, ModelConfig]:
        """Every model of the study by its config field: teacher, student, then the lists of ``distill``."""
        models = {"teacher": self.teacher, "student": self.student}
        for key in ("assistants", "peers", "teachers"):
            models |= {f"distill.{key}.{i}": model for i, model in enumerate(getattr(self.distill, key))}
        return models

    @model_validator(mode="after")
    def _text_uses_the_teachers_tokenizer(self) -> ExperimentConfig:
        """Text in the user's data is tokenised as a Hugging Face teacher reads it, unless data.tokenizer says."""
        if (self.data.tokenizer is None and self.teacher.name == "hf" and self.teacher.path
                and DATASETS.entry(self.data.name).meta.get("source")):
            self.data.tokenizer = self.teacher.path
        return self

    @model_validator(mode="after")
    def _models_fit_data(self) -> ExperimentConfig:
        try:
            shape = data_meta(self.data)["input_shape"]
        except ValueError as err:  # a data source whose files cannot be read
            raise ValueError(str(err) if str(err).startswith("data.") else f"data.path: {err}") from None
        for role, model in self.named_models().items():
            if not model_fits(model.name, self.data):
                meta = MODELS.entry(model.name).meta
                kind, given = meta.get("inputs", "tensor"), inputs_of(self.data)
                needs = f"{kind} inputs" if kind != given else f"{meta['input_rank']}-d inputs"
                gives = f"gives {given} of shape" if kind != given else "gives shape"
                raise ValueError(
                    f"{role}.name: model {model.name} needs {needs} but dataset {self.data.name} {gives} "
                    f"{tuple(shape)}; allowed: {', '.join(fitting_models(self.data))}"
                )
        return self

    @model_validator(mode="after")
    def _only_teachers_as_they_are(self) -> ExperimentConfig:
        for role, model in self.named_models().items():
            if not model.train and not role.startswith(("teacher", "distill.teachers")):
                raise ValueError(f"{role}.train: only a teacher is used as it is; the student, assistants and "
                                 "peers are trained (start them from a checkpoint instead)")
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

    @model_validator(mode="after")
    def _params_fit_mlflow(self) -> ExperimentConfig:
        """Every flattened value is an MLflow param: it must be storable (UTF-8) and not so long it is cut."""
        for key, value in self.flat().items():
            if len(value) > PARAM_VALUE_CHARS:
                raise ValueError(f"{key}: too long to log as an MLflow param ({len(value)} characters written "
                                 f"out; at most {PARAM_VALUE_CHARS}); use fewer or shorter entries")
            try:
                value.encode()
            except UnicodeEncodeError as err:
                raise ValueError(f"{key}: not storable text: {_short(value[err.start])} at position {err.start} "
                                 "is half of a surrogate pair") from None
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

    def teacher_model(self, k: int = 1) -> ModelConfig:
        """Teacher ``k``'s architecture: 1 is ``teacher``, 2 and up are ``distill.teachers`` in order."""
        return self.teacher if k == 1 else self.distill.teachers[k - 2]

    def teacher_fingerprint(self, version: str, k: int = 1) -> str:
        """Hash of everything that determines the trained teacher's weights, so only an identical teacher is reused.

        ``k`` picks one of several teachers (see :meth:`teacher_model`); teacher ``k`` trains with seed offset
        ``k - 1``, which is in its hash with its own architecture, so two teachers of one study never share
        weights, even of the same architecture.

        That is the code version, the whole data section (dataset, size, split fractions, split seed), the
        teacher's architecture and every training setting, its epoch budget included. Thread count, device
        and AMP are in too: each changes the weights, and a study reusing a teacher must get the weights it
        would have trained. The config cannot know where ``auto`` lands, so the device counts as written
        (``auto`` and ``cpu`` never share a teacher, even on a machine without a GPU); AMP counts unless the
        device is ``cpu`` or ``mps``, where the engine ignores it.
        """
        payload = self._training_payload(version, "teacher", self.teacher_model(k))
        if k > 1:  # the teacher alone keeps its hash of before there were several
            payload["seed_offset"] = k - 1
        if self.distill.mechanism == "cross_modal":  # a teacher of one view is not a teacher of another
            payload["view"] = self.distill.teacher_view or next(iter(data_meta(self.data)["views"]))
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def baseline_fingerprint(self, version: str, view: str | None = None) -> str:
        """Hash of everything that determines the baseline's weights: the student's architecture trained alone on
        the labels with this data, seed and training budget, so studies that differ only in how they distil (a
        temperature sweep) share one baseline per seed. ``view`` is the part of paired inputs it sees."""
        payload = self._training_payload(version, "baseline", self.student)
        if view:
            payload["view"] = view
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def _training_payload(self, version: str, role: str, model: ModelConfig) -> dict[str, Any]:
        """What a model trained on plain labels depends on: the code version, the whole data section (and the
        content of the user's data files), the model (and the content of its source and starting checkpoint)
        and every training setting, the role's epoch budget included.

        Thread count, device and AMP are in too: each changes the weights, and a study reusing a model must get
        the weights it would have trained. The device counts as written (``auto`` and ``cpu`` never share), and
        AMP counts unless the device is ``cpu`` or ``mps``, where the engine ignores it. Checkpoint cadence and
        the cache cap (``TrainConfig.RUNTIME``) are out; ``compile`` and ``channels_last`` are in only when set
        away from their defaults (``TrainConfig.NUMERIC_IF_SET``), and ``channels_last: false`` on ``cpu`` or
        ``mps`` is what empty means there.
        """
        train = self.train.model_dump(mode="json", exclude={"teacher_epochs", *TrainConfig.RUNTIME})
        train["epochs"] = self.train.epochs_for(role)
        if train["device"] in {"cpu", "mps"}:  # mixed precision runs on CUDA only
            train["amp"] = False
            if train["channels_last"] is False:  # what empty means there
                train["channels_last"] = None
        for key in TrainConfig.NUMERIC_IF_SET:
            if train[key] == TrainConfig.model_fields[key].default:
                del train[key]
        payload: dict[str, Any] = {"version": version, "data": self.data.model_dump(mode="json"),
                                   role: model.model_dump(mode="json"), "train": train}
        if DATASETS.entry(self.data.name).meta.get("source"):  # the user's files, by content
            payload["data_sha256"] = [content_digest(p) for p in (self.data.path, self.data.shifted_path) if p]
        source = source_file(model)
        if source is not None:  # a Hugging Face folder or your module's file: what it builds, by content
            payload["source_sha256"] = content_digest(source)
        if model.checkpoint:  # the weights it starts from, not only where they were
            payload["checkpoint_sha256"] = content_digest(model.checkpoint)
        return payload


def source_file(model: ModelConfig) -> Path | None:
    """The local file or folder a model source builds from (a Hugging Face folder, the file of an imported
    module, found without running it); None for built-in models, hub ids and model names."""
    if not model.path or not MODELS.entry(model.name).meta.get("source"):
        return None
    if model.name == "import":
        import importlib.util

        from kdcore.import_roots import add_import_roots

        add_import_roots()  # where kdcore.models.imported finds modules too
        try:
            spec = importlib.util.find_spec(model.path.partition(":")[0])
        except (ImportError, ValueError):
            return None
        return Path(spec.origin) if spec is not None and spec.origin and Path(spec.origin).is_file() else None
    folder = Path(model.path).expanduser()
    return folder if folder.exists() else None


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


_SHORT = reprlib.Repr()  # values quoted in messages: long text, big numbers and deep structures elided
_SHORT.maxstring = _SHORT.maxother = 80


def _short(value: Any) -> str:
    """A bounded ``repr`` of ``value`` for a one-line message."""
    try:
        return _SHORT.repr(value)
    except ValueError:  # an integer too long to write out
        return f"an integer of {value.bit_length()} bits"


def _key(part: Any) -> str:
    """A key of a field path as written: plain names bare, anything else quoted and shortened."""
    text = str(part)
    return text if isinstance(part, int) or re.fullmatch(r"[A-Za-z0-9_]{1,64}", text) else _short(part)


def _format_error(first: Any, prefix: str = "") -> str:
    loc = ".".join(_key(part) for part in first["loc"])
    loc = ".".join(p for p in (prefix, loc) if p)
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif "input" in first and first["type"] not in {"value_error", "missing"} and not isinstance(
        first["input"], dict
    ):
        msg = f"{msg} (got {_short(first['input'])})"
    msg = " ".join(msg.split())  # one line, whatever a check put into its message
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
        raise ConfigError(f"config: expected {SECTIONS}, got {_kind(raw)}")
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
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a raw config mapping.

    A value YAML cannot read is kept as text, so the field's own check says what it expects.
    """
    _mapping(raw, "config", SECTIONS)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {_short(item)}: expected section.key=value, e.g. distill.temperature=8")
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(map(_key, parts))}: {_key(part)} is a value, not a section")
            node = child
        try:
            node[parts[-1]] = _parse_yaml(text, key) if text else None
        except ConfigError:
            node[parts[-1]] = text
    return raw


def _kind(value: Any) -> str:
    """What a YAML document holds, in words, for 'expected a mapping, got ...'."""
    return {list: "a list", str: "text", bool: "true or false", int: "a number", float: "a number",
            bytes: "binary data", set: "a set"}.get(type(value), type(value).__name__)


def _parse_yaml(text: str, what: str) -> Any:
    """YAML text as Python values; any problem reading it is a one-line ConfigError naming ``what``.

    Besides syntax errors, PyYAML raises plain exceptions for values it cannot build (``2024-13-01``,
    ``!!int abc``, an integer of more than 4300 digits) and RecursionError for deep nesting.
    """
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{what}: invalid YAML{where}") from None
    except RecursionError:
        raise ConfigError(f"{what}: invalid YAML, nested too deeply") from None
    except Exception as err:  # a scalar PyYAML could not construct
        raise ConfigError(f"{what}: invalid YAML value ({_short(str(err))})") from None


def _mapping(raw: Any, what: str, expected: str) -> dict[str, Any]:
    """``raw`` when it is a mapping; an empty document or any other value is a one-line ConfigError."""
    if raw is None:
        raise ConfigError(f"{what} is empty; expected {expected}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{what}: expected {expected}, got {_kind(raw)}")
    return raw


def load_raw(path: str | Path, what: str = "file", expected: str = "a YAML mapping") -> dict[str, Any]:
    """Read a YAML file that must hold a mapping (a config, a situation); ``what`` names it in errors."""
    path = Path(path)
    name = f"{what} {str(path)!r}"
    if not path.is_file():
        raise ConfigError(f"{name} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{name}: cannot read it ({_short(str(err))})") from None
    return _mapping(_parse_yaml(text, name), name, expected)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a YAML file (or, without one, the defaults), apply CLI overrides and validate."""
    raw = load_raw(path, "config file", SECTIONS) if path is not None else {}
    return validate(apply_overrides(raw, list(overrides or [])))


def config_from_yaml(text: str) -> ExperimentConfig:
    """Validate a config held as YAML text (e.g. the ``config.yaml`` artifact of a study)."""
    return validate(_mapping(_parse_yaml(text, "config"), "config", SECTIONS))
