"""The Launch form, derived from :class:`~kdcore.config.ExperimentConfig` rather than written by hand.

Each config field becomes a :class:`FieldSpec` (widget kind, choices, bounds, default, help text),
so a new field or a new registered name shows up in the form without touching the page.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel

from kdcore.config import DATA_SOURCE_DEFAULTS, ExperimentConfig
from kdcore.registry import DATASETS, MECHANISMS, METHODS, MODELS

REGISTRIES = {"datasets": DATASETS, "models": MODELS, "methods": METHODS, "mechanisms": MECHANISMS}
# Set by the dashboard itself, never typed in: the store it reads and the device selector's choice.
# The fields of model and data sources are set by Launch's "my data" and "my model" panels
# (dashboard/sources.py), which read paths under the data root only.
HIDDEN = {"tracking.uri", "train.device",
          *(f"{role}.{key}" for role in ("teacher", "student") for key in ("path", "kwargs", "features", "checkpoint",
                                                                            "train")),
          *(f"data.{key}" for key in DATA_SOURCE_DEFAULTS)}
LONG_TEXT = 200  # text fields that may hold more than this get a text area


@dataclass(frozen=True)
class FieldSpec:
    path: str  # e.g. "distill.temperature"
    kind: str  # choice | bool | int | float | text | longtext | mapping | list
    default: Any
    description: str
    options: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False
    exclusive_max: bool = False
    optional: bool = False
    mechanism: str | None = None  # only this mechanism uses the field (registry meta "fields")
    when: tuple[tuple[str, Any], ...] = ()  # (sibling field, value) pairs that must hold for it to apply

    def applies(self, values: dict[str, Any]) -> bool:
        """Whether the field matters given the values chosen so far (e.g. peers only under online)."""
        section = self.section
        if self.mechanism is not None and values.get(f"{section}.mechanism", self.mechanism) != self.mechanism:
            return False
        if section == "teacher" and not MECHANISMS.entry(values.get("distill.mechanism", "offline")).meta.get(
                "teacher", True):
            return False
        return all(values.get(f"{section}.{name}", value) == value for name, value in self.when)

    @property
    def section(self) -> str:
        return self.path.split(".")[0]

    @property
    def label(self) -> str:
        return self.path.split(".")[1].replace("_", " ")

    def allowed(self) -> str:
        """What the field accepts, in words: shown under every widget."""
        if self.kind == "choice":
            text = "one of " + ", ".join(map(str, self.options))
        elif self.kind == "bool":
            text = "on or off"
        elif self.kind in {"int", "float"}:
            low = "" if self.minimum is None else f"{'>' if self.exclusive_min else '≥'} {self.minimum:g}"
            high = "" if self.maximum is None else f"{'<' if self.exclusive_max else '≤'} {self.maximum:g}"
            text = f"{'an integer' if self.kind == 'int' else 'a number'} {' and '.join(p for p in (low, high) if p)}"
        elif self.kind == "mapping":
            text = "a YAML mapping"
        elif self.kind == "list":
            text = "a YAML list"
        else:
            text = "text"
        if self.optional:
            text += ", or empty"
        return f"{text}; default {self.default if self.default is not None else 'empty'}"


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(inner type, optional) for ``X | None``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0], len(args) < len(get_args(annotation))
    return annotation, False


def _section_default(section: str) -> BaseModel:
    return getattr(ExperimentConfig(), section)


def config_fields() -> list[FieldSpec]:
    """One spec per user-settable config field, in the config's own order."""
    specs = []
    owner = {name: entry.name for entry in MECHANISMS for name in entry.meta.get("fields", ())}
    for section, section_field in ExperimentConfig.model_fields.items():
        model: type[BaseModel] = section_field.annotation  # type: ignore[assignment]
        defaults = _section_default(section)
        for name, field in model.model_fields.items():
            path = f"{section}.{name}"
            if path in HIDDEN:
                continue
            annotation, optional = _unwrap(field.annotation)
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            common = {"path": path, "default": getattr(defaults, name), "description": field.description or "",
                      "optional": optional, "mechanism": owner.get(name) if section == "distill" else None,
                      "when": tuple(extra.get("when", {}).items())}
            if "registry" in extra:  # sources (import, csv, ...) are picked in the "my data" and "my model" panels
                options = tuple(e.name for e in REGISTRIES[extra["registry"]] if not e.meta.get("source"))
                specs.append(FieldSpec(kind="choice", options=options, **common))
            elif get_origin(annotation) is Literal:
                specs.append(FieldSpec(kind="choice", options=get_args(annotation), **common))
            elif annotation is bool:
                specs.append(FieldSpec(kind="bool", **common))
            elif annotation in (int, float):
                bounds: dict[str, Any] = {}
                for item in field.metadata:
                    if isinstance(item, Ge):
                        bounds["minimum"] = item.ge
                    elif isinstance(item, Gt):
                        bounds.update(minimum=item.gt, exclusive_min=True)
                    elif isinstance(item, Le):
                        bounds["maximum"] = item.le
                    elif isinstance(item, Lt):
                        bounds.update(maximum=item.lt, exclusive_max=True)
                specs.append(FieldSpec(kind=annotation.__name__, **bounds, **common))
            elif get_origin(annotation) is dict:
                specs.append(FieldSpec(kind="mapping", **common))
            elif get_origin(annotation) is list:
                specs.append(FieldSpec(kind="list", **common))
            elif any(getattr(item, "max_length", 0) and item.max_length > LONG_TEXT for item in field.metadata):
                specs.append(FieldSpec(kind="longtext", **common))
            else:
                specs.append(FieldSpec(kind="text", **common))
    return specs


def nest(values: dict[str, Any]) -> dict[str, Any]:
    """``{"distill.temperature": 4}`` -> ``{"distill": {"temperature": 4}}`` (a raw config)."""
    raw: dict[str, Any] = {}
    for path, value in values.items():
        section, name = path.split(".", 1)
        raw.setdefault(section, {})[name] = value
    return raw
