"""Launch's "my data" and "my model": the user's own files and modules, picked by path under the data root.

The generated form covers the built-in datasets and models. These two panels add what only a data or model
source takes (a folder or file, a label column, a checkpoint, an import path). Every path is resolved
under the data root by :mod:`dashboard.paths` before it reaches the config, and a refused one is shown at
its field like any other config error.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
import yaml

from dashboard.paths import PathRefused, data_root, shown, under_root
from kdcore.config import CHECKPOINT_SUFFIXES, DATA_SOURCE_DEFAULTS, DataConfig
from kdcore.registry import DATASETS, MODELS

# How each model source names its model, and where that name points.
MODEL_PATHS = {
    "hf": ("Model folder (saved with save_pretrained), under the data root", "folder"),
    "import": ("Factory, as package.module:callable", "code"),
    "timm": ("timm model name, e.g. resnet18", "name"),
    "torchvision": ("torchvision model name, e.g. resnet18", "name"),
}
PATH_FIELDS = ("path", "paired_path", "shifted_path")


def data_sources() -> list[str]:
    return [e.name for e in DATASETS if e.meta.get("source")]


def model_sources() -> list[str]:
    return [e.name for e in MODELS if e.meta.get("source")]


def _mapping(label: str, value: Any, key: str, help_text: str) -> Any:
    text = st.text_input(label, value=yaml.safe_dump(value or {}, default_flow_style=True, width=1000).strip(),
                         key=key, help=help_text)
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return text  # the validator names the wrong type
    return {} if parsed is None else parsed


def data_panel(initial: dict[str, Any], key: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """"Use my own data": a data source and its fields (widget keys start with ``key``). Returns the data section
    (None when off) and the refused paths by field."""
    sources = data_sources()
    on = st.toggle("Use my own data", value=initial.get("name") in sources, key=f"{key}.data",
                   help=f"A folder or file under {data_root()} on the dashboard's machine.")
    if not on or not sources:
        return None, {}
    name = st.selectbox("Data source", sources, key=f"{key}.data.name",
                        index=sources.index(initial["name"]) if initial.get("name") in sources else 0,
                        format_func=lambda n: f"{n}: {DATASETS.entry(n).description}")
    section: dict[str, Any] = {"name": name}
    refused: dict[str, str] = {}
    takes = DATASETS.entry(name).meta.get("fields", ("path",))
    for field, info in DataConfig.model_fields.items():
        if field not in takes:
            continue
        label, help_text = field.replace("_", " ").capitalize(), info.description or ""
        current = initial.get(field, DATA_SOURCE_DEFAULTS[field])
        widget_key = f"{key}.data.{field}"
        if field in PATH_FIELDS:
            typed = st.text_input(f"{label} (under the data root)", value=shown(current), key=widget_key,
                                  help=help_text)
            if typed.strip() or field == "path":
                try:
                    section[field] = under_root(typed, f"data.{field}")
                except PathRefused as err:
                    refused[f"data.{field}"] = str(err).partition(": ")[2]
        elif field == "augment":
            section[field] = st.multiselect(label, ["crop", "flip"], default=current or [], key=widget_key,
                                            help=help_text)
        elif field == "stream":
            choice = st.selectbox(label, ["auto", "on", "off"], key=widget_key, help=help_text,
                                  index={None: 0, True: 1, False: 2}[current])
            section[field] = {"auto": None, "on": True, "off": False}[choice]
        elif field in ("image_size", "max_length"):
            number = st.number_input(label, value=current, step=1, format="%d", key=widget_key, help=help_text)
            section[field] = None if number is None else int(number)
        elif field == "columns":
            text = st.text_input(f"{label} (comma-separated, empty = every other column)",
                                 value=", ".join(current or []), key=widget_key, help=help_text)
            section[field] = [c.strip() for c in text.split(",") if c.strip()]
        else:
            text = st.text_input(label, value=current or "", key=widget_key, help=help_text)
            section[field] = text.strip() or None
    return section, refused


def model_panel(role: str, initial: dict[str, Any], key: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """"Use my own model" for ``role``: a model source, where it comes from, its checkpoint and (a teacher)
    whether it is used as it is (widget keys start with ``key``). Returns the role's model section (None when
    off) and the refused paths."""
    sources = model_sources()
    on = st.toggle(f"Use my own {role}", value=initial.get("name") in sources, key=key,
                   help="A Hugging Face folder, your own nn.Module factory, or a timm/torchvision model name.")
    if not on or not sources:
        return None, {}
    name = st.selectbox(f"{role.title()} source", sources, key=f"{key}.name",
                        index=sources.index(initial["name"]) if initial.get("name") in sources else 0,
                        format_func=lambda n: f"{n}: {MODELS.entry(n).description}")
    label, kind = MODEL_PATHS.get(name, ("Path", "name"))
    model: dict[str, Any] = {"name": name}
    refused: dict[str, str] = {}
    typed = st.text_input(label, value=shown(initial.get("path")), key=f"{key}.path")
    if kind == "folder":
        try:
            model["path"] = under_root(typed, f"{role}.path", kind="folder")
        except PathRefused as err:
            refused[f"{role}.path"] = str(err).partition(": ")[2]
    else:
        model["path"] = typed.strip() or None
    if name != "hf":
        model["kwargs"] = _mapping("Keyword arguments (YAML mapping)", initial.get("kwargs"), f"{key}.kwargs",
                                   "Passed to the factory, e.g. {width: 16}.")
    model["features"] = _mapping("Features (name: submodule)", initial.get("features"), f"{key}.features",
                                 "Forward hooks for feature and relation methods, e.g. {penultimate: pool}.")
    checkpoint = st.text_input("Checkpoint (under the data root; empty = the model's own weights)",
                               value=shown(initial.get("checkpoint")), key=f"{key}.checkpoint")
    if checkpoint.strip():
        try:
            model["checkpoint"] = under_root(checkpoint, f"{role}.checkpoint", kind="file",
                                             suffixes=CHECKPOINT_SUFFIXES)
        except PathRefused as err:
            refused[f"{role}.checkpoint"] = str(err).partition(": ")[2]
    if role == "teacher":
        model["train"] = not st.checkbox("Use it as it is (evaluated, never trained)",
                                         value=initial.get("train") is False, key=f"{key}.as_is")
    return model, refused


def own_inputs(initial: dict[str, Any], version: int) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The panels for the data, the teacher and the student, side by side: the sections they replace and
    the paths they refused, keyed by dotted field."""
    replaced: dict[str, dict[str, Any]] = {}
    refused: dict[str, str] = {}
    with st.expander("Your own data and models", expanded=bool(
            initial.get("data", {}).get("path") or initial.get("teacher", {}).get("path")
            or initial.get("student", {}).get("path"))):
        st.caption(f"Paths are read under the data root, {data_root()} (kdx dashboard --data-root DIR).")
        columns = st.columns(3)
        with columns[0]:
            section, bad = data_panel(initial.get("data", {}), f"form{version}.own")
            if section is not None:
                replaced["data"] = section
            refused |= bad
        for column, role in zip(columns[1:], ("teacher", "student"), strict=True):
            with column:
                section, bad = model_panel(role, initial.get(role, {}), f"form{version}.own.{role}")
                if section is not None:
                    replaced[role] = section
                refused |= bad
    return replaced, refused
