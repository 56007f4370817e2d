"""A sweep file, parsed and expanded into validated study configs before any study runs.

A sweep asks one question over many studies: the same base config with some fields varied. The file::

    base: digits_kd.yaml          # the study config every point starts from, relative to this file or absolute
    overrides:                    # dotted config fields set for every point (a value replaces the field)
      train.epochs: 10
    seeds: [0, 1, 2]              # every point repeated per seed (train.seed); default [0]
    grid:                         # the cartesian product of these axes, in the order written
      distill.temperature: [1, 2, 4, 8]
      distill.alpha: [0.5, 0.9]
    random:                       # `samples` random points drawn from ranges or choices
      samples: 6
      seed: 0                     # the draw is reproducible; default 0
      axes:
        train.lr: {low: 0.0003, high: 0.03, log: true}       # log-uniform
        distill.alpha: {low: 0.1, high: 0.9}                  # uniform, 4 significant digits
        teacher.depth: {low: 1, high: 4, integer: true}      # a whole number, both ends included
        student.width: {choices: [8, 16, 32]}
    search:                       # instead of grid and random: an Optuna search over `axes` (validated here only)
      kind: optuna
      trials: 20
      objective: val/ratio_baseline   # a validation number (the test split is reported once, never searched on)
      direction: maximize             # or minimize
      prune: true                     # stop a trial whose validation curve lags the trials before it
      seed: 0                         # seed of Optuna's sampler
      axes: {distill.temperature: {low: 1, high: 8, log: true}}
    max_studies: 200              # refuse a sweep of more studies than this
    name: temperature x alpha on digits   # prefix of every study's name; default the file's name

Give ``grid``, ``random``, or both (their points concatenated: the grid's first); ``search`` stands alone. An axis
may not also be an override, and ``train.seed`` and ``tracking.study_name`` are set here (by ``seeds`` and the
point's label), so neither is an axis or an override. Random draws are not deduplicated: ``samples`` is the count.
Points come grid first, then random, each followed by its seeds; a point's id (``p00``, ``p01``, ...) names its
combination of values and is shared by its seeds.

:func:`load_sweep` checks the file's shape, that every axis and override is a config field and the study count;
:func:`expand` validates each distinct axis value once (an error names the axis and the value), then every point's
config (an invalid combination names the point). Every problem is a one-line :class:`SweepError`.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import random as stdrandom
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from kdcore.config import (
    MAX_SEED,
    RUN_NAME_CHARS,
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    load_raw,
    validate,
)

OBJECTIVES = {  # what a search may optimise: name -> (the study's metric, what it is); all on validation
    "val/acc": ("study/val_student_acc", "the student's best validation accuracy"),
    "val/gain": ("", "student - baseline best validation accuracy"),
    "val/ratio_baseline": ("study/val_acc_ratio_baseline", "student / baseline best validation accuracy"),
    "val/ratio_teacher": ("study/val_acc_ratio_teacher", "student / teacher best validation accuracy"),
}
RESERVED = {"train.seed": "use seeds", "tracking.study_name": "each point's study is named after its label"}


SWEEP_FILE_PREFIX = "sweep_"  # examples/sweep_*.yaml are sweep files, the other examples study configs


def is_sweep_file(path: str | Path) -> bool:
    """Whether a YAML file among the examples is a sweep file (by its name), not a study config."""
    return Path(path).name.startswith(SWEEP_FILE_PREFIX)


class SweepError(ValueError):
    """A sweep file problem, reported as one line that names the field and what is allowed."""


class _Strict(BaseModel):
    """Unknown keys and missing required keys are one-line errors that name the key and what is allowed."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    required: ClassVar[dict[str, str]] = {}  # key -> what to give, for the "missing" message

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [key for key in data if key not in cls.model_fields]
            if unknown:
                raise ValueError(f"{unknown[0]}: unknown key; allowed: {', '.join(cls.model_fields)}")
            for key, hint in cls.required.items():
                if data.get(key) is None:
                    raise ValueError(f"{key}: missing; {hint}")
        return data


class Axis(_Strict):
    """One random (or searched) axis: a range ``low``..``high`` (``log``, ``integer``) or a list of ``choices``."""

    low: StrictInt | StrictFloat | None = None
    high: StrictInt | StrictFloat | None = None
    log: StrictBool = False
    integer: StrictBool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> Axis:
        ranged = self.low is not None or self.high is not None
        if self.choices is not None:
            if ranged or self.log or self.integer:
                raise ValueError("choices: give either choices or a range (low, high, log, integer), not both")
            if not self.choices:
                raise ValueError("choices: empty list; give at least one value")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"{'high' if ranged and self.high is None else 'low'}: missing; give low and high, "
                             "e.g. {low: 0.1, high: 0.9}, or choices, e.g. {choices: [8, 16, 32]}")
        if self.low > self.high:
            raise ValueError(f"low: {self.low} is more than high {self.high}; allowed: low <= high")
        if self.log and self.low <= 0:
            raise ValueError(f"low: a log range needs low > 0 (got {self.low})")
        if self.integer and not all(float(end).is_integer() for end in (self.low, self.high)):
            raise ValueError(f"low: an integer range needs whole numbers (got {self.low}, {self.high})")
        return self

    def ends(self) -> list[Any]:
        """The values checked alone before any point is built: every choice, or both ends of the range."""
        if self.choices is not None:
            return list(self.choices)
        cast = int if self.integer else float
        return [cast(self.low), cast(self.high)]

    def draw(self, rng: stdrandom.Random) -> Any:
        """One value: a choice, or uniform (log-uniform with ``log``) in the range, ends included."""
        if self.choices is not None:
            return copy.deepcopy(rng.choice(self.choices))
        low, high = float(self.low), float(self.high)  # type: ignore[arg-type]  # a range when no choices
        if self.integer and not self.log:
            return rng.randint(int(low), int(high))
        value = math.exp(rng.uniform(math.log(low), math.log(high))) if self.log else rng.uniform(low, high)
        value = min(max(round(value) if self.integer else float(f"{value:.4g}"), low), high)  # 4 digits: readable
        return int(value) if self.integer else value


class RandomSpec(_Strict):
    required: ClassVar[dict[str, str]] = {
        "samples": "give the number of random points, e.g. 6",
        "axes": "give the fields to draw, e.g. {train.lr: {low: 0.0003, high: 0.03, log: true}}",
    }
    samples: StrictInt = Field(ge=1, description="Random points drawn (each repeated per seed).")
    seed: StrictInt = Field(0, ge=0, description="Seed of the draw, so the same file gives the same points.")
    axes: dict[str, Axis] = Field(description="Config field -> range or choices.")


class SearchSpec(_Strict):
    required: ClassVar[dict[str, str]] = {
        "trials": "give the number of Optuna trials, e.g. 20",
        "objective": "give a validation number to optimise, e.g. val/acc",
        "axes": "give the fields to search, e.g. {distill.temperature: {low: 1, high: 8, log: true}}",
    }
    kind: Literal["optuna"] = "optuna"
    trials: StrictInt = Field(ge=1, description="Studies the search runs (each repeated per seed).")
    objective: str = Field(description="The metric optimised: a validation number, never the test split.")
    direction: Literal["maximize", "minimize"] = "maximize"
    prune: StrictBool = Field(False, description="Stop unpromising trials early.")
    seed: StrictInt = Field(0, ge=0, description="Seed of the sampler, so the same file searches the same way.")
    axes: dict[str, Axis] = Field(description="Config field -> range or choices (the search space).")

    @field_validator("objective")
    @classmethod
    def _validation_number(cls, value: str) -> str:
        if value not in OBJECTIVES:
            raise ValueError(f"{value!r} is not a validation number a search optimises; allowed: "
                             f"{', '.join(OBJECTIVES)} (the test split is reported once, never optimised)")
        return value

    @field_validator("axes")
    @classmethod
    def _plain_choices(cls, axes: dict[str, Axis]) -> dict[str, Axis]:
        for field, axis in axes.items():
            odd = next((c for c in axis.choices or () if not isinstance(c, bool | int | float | str)), None)
            if odd is not None:
                raise ValueError(f"{field}: choice {_text(odd)} is not a number, string or boolean; a search "
                                 "chooses among those (a grid takes any value)")
        return axes


class SweepSpec(_Strict):
    """A parsed sweep file (see the module docstring); ``base`` is absolute once loaded."""

    required: ClassVar[dict[str, str]] = {
        "base": "give the study config file every point starts from, relative to the sweep file or absolute",
    }
    base: Path
    overrides: dict[str, Any] = Field(default_factory=dict)
    seeds: list[StrictInt] = Field([0], min_length=1)
    grid: dict[str, list[Any]] | None = None
    random: RandomSpec | None = None
    search: SearchSpec | None = None
    max_studies: StrictInt = Field(200, ge=1)
    name: str = Field("sweep", min_length=1, max_length=200)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        for seed in value:
            if not 0 <= seed <= MAX_SEED:
                raise ValueError(f"{seed} is not a seed; allowed: 0 to {MAX_SEED}")
            if value.count(seed) > 1:
                raise ValueError(f"{seed} is listed twice; give each seed once")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip() or not value.isprintable():
            raise ValueError(f"{value!r} is not a name; use printable text")
        return value

    @model_validator(mode="after")
    def _one_mode(self) -> SweepSpec:
        if self.search is not None and (self.grid is not None or self.random is not None):
            raise ValueError("search: a search stands alone; give search, or grid and/or random")
        if self.grid is None and self.random is None and self.search is None:
            raise ValueError("grid: missing; give grid, random (or both), or search")
        if self.grid is not None:
            if not self.grid:
                raise ValueError("grid: empty; give at least one axis, e.g. {distill.temperature: [1, 2, 4, 8]}")
            for field, values in self.grid.items():
                if not values:
                    raise ValueError(f"grid.{field}: empty list; give at least one value")
                twice = next((v for i, v in enumerate(values) if v in values[:i]), None)
                if twice is not None:
                    raise ValueError(f"grid.{field}: {_text(twice)} is listed twice; give each value once")
        for mode, axes in self.axes().items():
            if not axes:
                raise ValueError(f"{mode}.axes: empty; give at least one axis")
            for field in axes:
                _check_field(f"{mode}.{field}", field)
                if field in self.overrides:
                    raise ValueError(f"{mode}.{field}: also in overrides; a field is either varied or set")
        for field in self.overrides:
            _check_field(f"overrides.{field}", field)
        return self

    def axes(self) -> dict[str, dict[str, Any]]:
        """Each mode given -> its axes (grid: field -> values; random, search: field -> Axis)."""
        found = {"grid": self.grid, "random": self.random and self.random.axes,
                 "search": self.search and self.search.axes}
        return {mode: axes for mode, axes in found.items() if axes is not None}


def _check_field(where: str, field: str) -> None:
    """A ValueError unless ``field`` is a dotted config field that a sweep may set."""
    if field in RESERVED:
        raise ValueError(f"{where}: set by the sweep ({RESERVED[field]}); it cannot be an axis or an override")
    model: type[BaseModel] = ExperimentConfig
    parts = field.split(".")
    for i, part in enumerate(parts):
        if part not in model.model_fields:
            inside = f"in {'.'.join(parts[:i])}" if i else "at the top"
            raise ValueError(f"{where}: not a config field; allowed {inside}: {', '.join(model.model_fields)}")
        annotation = model.model_fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        if i + 1 < len(parts) and get_origin(annotation) is not dict:  # only free mappings (params) go deeper
            raise ValueError(f"{where}: not a config field; {'.'.join(parts[: i + 1])} is a value, not a section")
        return


@dataclass(frozen=True)
class Point:
    """One study of a sweep: its axis values, its seed and its validated config.

    ``id`` names the combination of axis values (``p03``), shared by its seeds; ``key`` is unique per study.
    """

    id: str
    values: dict[str, Any]
    seed: int
    config: ExperimentConfig

    @property
    def key(self) -> str:
        return f"{self.id}-s{self.seed}"

    @property
    def label(self) -> str:
        return _label(self.values, self.seed)


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> SweepSpec:
    """Read and check a sweep file; ``overrides`` (``a.b=value``, as on the command line) go on top of its own.

    Everything but the configs themselves is checked here: the file's shape, the base file, that axes and
    overrides are config fields, and the number of studies against ``max_studies``.
    """
    path = Path(path)
    try:
        raw = load_raw(path, "sweep file", f"a mapping of {', '.join(SweepSpec.model_fields)}")
    except ConfigError as err:
        raise SweepError(str(err)) from None
    raw = dict(raw)
    if "overrides" in raw and not isinstance(raw["overrides"], dict | type(None)):
        raise SweepError("overrides: expected a mapping of dotted config fields, e.g. {train.epochs: 10}")
    raw["overrides"] = {**(raw.get("overrides") or {}), **_parse_overrides(overrides or [])}
    raw.setdefault("name", path.stem)
    if isinstance(raw.get("base"), str):
        raw["base"] = (path.parent / Path(raw["base"]).expanduser()).resolve()
    spec = _parse(raw)
    try:
        load_raw(spec.base, "config file")
    except ConfigError as err:
        raise SweepError(f"base: {err}") from None
    studies = count(spec)
    if studies > spec.max_studies:
        raise SweepError(f"sweep: {studies} studies, more than max_studies {spec.max_studies}; raise max_studies "
                         "or trim an axis")
    return spec


def _parse(raw: dict[str, Any]) -> SweepSpec:
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as err:
        raise SweepError(_one_line(err)) from None


def _one_line(err: ValidationError) -> str:
    """``field.path: what is wrong``, keys written as in the file (dotted axis names unquoted)."""
    first = err.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    msg = " ".join(first["msg"].removeprefix("Value error, ").split())
    if first["type"] != "value_error" and "input" in first and not isinstance(first["input"], dict):
        msg = f"{msg} (got {reprlib.repr(first['input'])})"
    own, sep, rest = msg.partition(": ")
    if first["type"] == "value_error" and sep and " " not in own:  # a model's message names a key inside it
        loc, msg = ".".join(p for p in (loc, own) if p), rest
    return f"{loc}: {msg}" if loc else msg


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    """``a.b=value`` strings as dotted field -> value, parsed as the config's own overrides are."""
    out: dict[str, Any] = {}
    for item in items:
        try:
            node: Any = apply_overrides({}, [item])
        except ConfigError as err:
            raise SweepError(str(err)) from None
        key = item.partition("=")[0]
        for part in key.split("."):
            node = node[part]
        out[key] = node
    return out


def count(spec: SweepSpec) -> int:
    """The number of studies the sweep runs, without building a config."""
    points = 0
    if spec.grid is not None:
        points += math.prod(len(values) for values in spec.grid.values())
    if spec.random is not None:
        points += spec.random.samples
    if spec.search is not None:
        points += spec.search.trials
    return points * len(spec.seeds)


def configure(spec: SweepSpec, values: dict[str, Any], seed: int) -> ExperimentConfig:
    """The validated config of one point: base, then overrides, then the axis values and ``train.seed``; the
    study is named after the sweep and the point's label. Also what a search runner builds each trial with."""
    try:
        return _build(spec, values, seed)
    except ConfigError as err:
        raise SweepError(f"{_label(values, seed)}: fails validation: {err}") from None


def _build(spec: SweepSpec, values: dict[str, Any], seed: int, base: dict[str, Any] | None = None) -> ExperimentConfig:
    """A point's config from ``base`` (the base with the overrides, read once by a caller building many; else
    read here)."""
    name = _clip(f"{spec.name}: {_label(values, seed)}", RUN_NAME_CHARS)
    raw = copy.deepcopy(base) if base is not None else _base(spec)
    return validate(_with(raw, {**values, "train.seed": seed, "tracking.study_name": name}))


def check(spec: SweepSpec) -> None:
    """Validate the base with the overrides, then each distinct axis value (or range end) once, on the base.

    An error is reported here only when it names the overrides or the axis itself; others may depend on a
    combination, which :func:`expand` reports by its point.
    """
    axes = spec.axes()
    varied = [field for fields in axes.values() for field in fields]
    try:
        validate(_with(_base(spec), {"train.seed": spec.seeds[0]}))
    except ConfigError as err:
        field = str(err).partition(": ")[0]
        if not any(_within(field, axis) for axis in varied):
            owner = next((key for key in spec.overrides if _within(field, key)), None)
            where = f"overrides.{owner}: {_text(spec.overrides[owner])}" if owner else f"base: {spec.base}"
            raise SweepError(f"{where} fails validation: {err}") from None
    for mode, fields in axes.items():
        for field, given in fields.items():
            if mode == "grid" or given.choices is not None:
                shown = [(_text(value), value) for value in (given if mode == "grid" else given.choices)]
            else:
                low, high = given.ends()
                shown = [(f"low {_text(low)}", low), (f"high {_text(high)}", high)]
            for text, value in shown:
                try:
                    validate(_with(_base(spec), {"train.seed": spec.seeds[0], field: value}))
                except ConfigError as err:
                    if _within(str(err).partition(": ")[0], field):
                        raise SweepError(f"{mode}.{field}: {text} fails validation: {err}") from None


def expand(spec: SweepSpec) -> list[Point]:
    """Every grid point, then every random point, each repeated per seed, with its validated config.

    Raises a SweepError for a search (Optuna picks its points as it runs; see :func:`configure`), for any value
    :func:`check` refuses, and for the first point whose combination of values is invalid, named by its label.
    """
    if spec.search is not None:
        raise SweepError("search: an Optuna search picks its points as it runs; expand takes grid and random")
    check(spec)
    combos: list[dict[str, Any]] = []
    if spec.grid is not None:
        combos += [dict(zip(spec.grid, values, strict=True)) for values in itertools.product(*spec.grid.values())]
    if spec.random is not None:
        rng = stdrandom.Random(spec.random.seed)
        combos += [{field: axis.draw(rng) for field, axis in spec.random.axes.items()}
                   for _ in range(spec.random.samples)]
    width = max(2, len(str(len(combos) - 1)))
    points = []
    base = _base(spec)  # read once: every point starts from a copy
    for i, values in enumerate(combos):
        for seed in spec.seeds:
            point_id = f"p{i:0{width}d}"
            try:
                config = _build(spec, values, seed, base)
            except ConfigError as err:
                raise SweepError(f"sweep: point {point_id} ({_label(values, seed)}) fails validation: {err}") from None
            points.append(Point(point_id, dict(values), seed, config))
    return points


def _base(spec: SweepSpec) -> dict[str, Any]:
    """A fresh copy of the base config with the sweep's overrides applied."""
    try:
        raw = load_raw(spec.base, "config file")
    except ConfigError as err:
        raise SweepError(f"base: {err}") from None
    return _with(raw, spec.overrides)


def _with(raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    for field, value in values.items():
        _put(raw, field, value)
    return raw


def _put(raw: dict[str, Any], field: str, value: Any) -> None:
    """Set a dotted field in a raw config; an empty section (``train:`` alone) becomes a mapping."""
    *sections, last = field.split(".")
    node = raw
    for part in sections:
        if node.get(part) is None:
            node[part] = {}
        if not isinstance(node[part], dict):
            raise SweepError(f"base: {part} is a value, not a section, so {field} cannot be set")
        node = node[part]
    node[last] = copy.deepcopy(value)


def _within(field: str, axis: str) -> bool:
    """Whether an error about ``field`` is about ``axis`` (the field itself, inside it, or the section holding it)."""
    return field == axis or field.startswith(f"{axis}.") or axis.startswith(f"{field}.")


def _text(value: Any) -> str:
    """A value as written in a label: numbers to 4 significant digits, YAML's true/false, lists as JSON."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)


def _label(values: dict[str, Any], seed: int) -> str:
    return f"{', '.join(f'{field}={_text(value)}' for field, value in values.items())} · seed {seed}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
