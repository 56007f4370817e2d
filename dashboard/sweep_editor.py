"""The Sweep editor's parts: a sweep file built from the fields a user varies, checked by the rules of ``kdx sweep``
before anything runs, and a time estimate from past studies of the same config.

The page only arranges widgets; everything it shows is computed here. A sweep composed in the dashboard is two
files side by side, ``base.yaml`` (the Launch form's config) and ``sweep.yaml`` (``base: base.yaml``), so it runs
the same from the dashboard and from ``kdx sweep sweep.yaml``.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
import yaml

from dashboard import data
from dashboard.form import FieldSpec
from kdcore import tracking
from kdcore.config import ExperimentConfig
from kdcore.sweep_spec import RESERVED, SweepError, check, count, expand, load_sweep

BASE_FILE, SWEEP_FILE = "base.yaml", "sweep.yaml"
SEEDS = [0, 1, 2]  # a sweep's default seeds: three is the fewest that give an interval with a spread
SAMPLES = 4  # random points drawn by default
MAX_STUDIES = 200  # kdx sweep's own default limit
KINDS = ("int", "float", "choice", "bool")  # the fields a sweep can vary from the editor
GRID, RANDOM = "grid", "random"
HEADER = "# A sweep composed on Launch. Save base.yaml beside it, then run: kdx sweep sweep.yaml\n"


@dataclass(frozen=True)
class AxisChoice:
    """One varied field: a list of ``values`` (``grid``), or drawn at random (``random``) from a range ``low``..
    ``high`` (``ranged``: a number) or from ``values`` (a choice or a switch)."""

    field: str
    mode: str = GRID
    values: list[Any] = field(default_factory=list)
    ranged: bool = False
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    def axis(self) -> Any:
        """The axis as the sweep file writes it."""
        if self.mode == GRID:
            return list(self.values)
        if not self.ranged:
            return {"choices": list(self.values)}
        ranged: dict[str, Any] = {"low": self.low, "high": self.high}
        return ranged | ({"log": True} if self.log else {}) | ({"integer": True} if self.integer else {})


@dataclass(frozen=True)
class Checked:
    """What a sweep file comes to: its number of studies, or the one-line error that stops it."""

    studies: int | None
    error: str | None = None


def variable(specs: list[FieldSpec], values: dict[str, Any]) -> list[FieldSpec]:
    """The form's fields a sweep can vary: numbers, choices and switches that apply to this config."""
    return [spec for spec in specs if spec.kind in KINDS and spec.path not in RESERVED and spec.applies(values)]


def parse_values(text: str) -> list[Any]:
    """``"1, 2.5, 4"`` -> ``[1, 2.5, 4]``: numbers as numbers, ``true``/``false`` as switches, the rest as text, so a
    value the config refuses is reported by the config, naming its field."""
    return [_value(item.strip()) for item in text.split(",") if item.strip()]


def _value(item: str) -> Any:
    for cast in (int, float):
        try:
            return cast(item)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(item.lower(), item)


def sweep_file(axes: list[AxisChoice], seeds: list[Any], *, name: str, samples: int = SAMPLES,
               max_studies: int = MAX_STUDIES) -> dict[str, Any]:
    """The sweep file's mapping: every grid axis in a grid, every random one drawn ``samples`` times."""
    sweep: dict[str, Any] = {"base": BASE_FILE, "name": name, "seeds": list(seeds), "max_studies": max_studies}
    grid = {a.field: a.axis() for a in axes if a.mode == GRID}
    drawn = {a.field: a.axis() for a in axes if a.mode == RANDOM}
    if grid:
        sweep["grid"] = grid
    if drawn:
        sweep["random"] = {"samples": samples, "axes": drawn}
    return sweep


def to_yaml(sweep: dict[str, Any]) -> str:
    """The sweep file's text, with how to run it."""
    return HEADER + yaml.safe_dump(sweep, sort_keys=False, default_flow_style=None)


def base_yaml(config: ExperimentConfig) -> str:
    """The base config's text: the study a plain launch runs, its store left to whoever runs the sweep."""
    return config.model_copy(update={"tracking": config.tracking.model_copy(update={"uri": None})}).to_yaml()


def write(folder: Path, base: str, sweep: str) -> Path:
    """``base.yaml`` and ``sweep.yaml`` in ``folder``; the sweep file's path."""
    (folder / BASE_FILE).write_text(base)
    (folder / SWEEP_FILE).write_text(sweep)
    return folder / SWEEP_FILE


@st.cache_data(max_entries=64, show_spinner=False)
def validate(base: str, sweep: str, every_point: bool = False) -> Checked:
    """Check a sweep as ``kdx sweep`` does, before it runs: the file's shape, its fields, the study count against
    ``max_studies`` and each value alone; with ``every_point``, also each point's whole config (slower: one
    config per study, so the page does it when the sweep is launched)."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            spec = load_sweep(write(Path(folder), base, sweep))
            (expand if every_point else check)(spec)
        except SweepError as err:
            return Checked(None, str(err))
    return Checked(count(spec))


# --- the estimate -------------------------------------------------------------------------------------------
def same_config(config: ExperimentConfig) -> dict[str, str]:
    """What "the same config" means for a time estimate: the tags ``kd.dataset``, ``kd.teacher`` and ``kd.student``
    a study of ``config`` gets, and its ``train.epochs``."""
    from kdcore.study import model_spec, teacher_label  # torch: the Launch page has it already

    teacher = teacher_label(config)
    return {"kd.dataset": config.data.name, "kd.teacher": teacher, "kd.student": model_spec(config.student),
            "train.epochs": str(config.train.epochs)}


@st.cache_data(ttl=data.CACHE_SECONDS, show_spinner=False)
def past_wall_times(uri: str, same: dict[str, str]) -> list[float]:
    """``study/wall_s`` of every finished study of the same config (see :func:`same_config`) in the store."""
    frame = tracking.runs_frame(uri, "tags.`kd.role` = 'study' AND attributes.status = 'FINISHED'")
    columns = {f"tags.{key}" if key.startswith("kd.") else f"params.{key}": value for key, value in same.items()}
    if frame.empty or not set(columns) | {"metrics.study/wall_s"} <= set(frame.columns):
        return []
    mine = frame[(frame[list(columns)] == pd.Series(columns)).all(axis=1)]
    seconds = pd.to_numeric(mine["metrics.study/wall_s"], errors="coerce")
    return [float(s) for s in seconds if 0 < s < data.HUGE]


def estimate(wall_times: list[float], studies: int, same: dict[str, str]) -> str:
    """The sweep's time in words: its studies times the median of past studies of the same config."""
    if not wall_times:
        return "No past study of this config to estimate from."
    median = statistics.median(wall_times)
    past = f"{len(wall_times)} past {'study' if len(wall_times) == 1 else 'studies'}"
    return (f"About {duration(median * studies)}: {studies} × {duration(median)}, the median of {past} of "
            f"{same['kd.dataset']} {same['kd.teacher']} → {same['kd.student']}, {same['train.epochs']} epochs "
            "(less where studies share a teacher).")


def duration(seconds: float) -> str:
    """45 -> "45 s", 540 -> "9 min", 5400 -> "1.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --- a launched sweep ---------------------------------------------------------------------------------------
def finished_count(uri: str, sweep_id: str) -> int:
    """How many of the sweep's studies have finished, read from the store (tag ``kd.sweep_id``); not cached, so
    a page polling a running sweep sees each study as it ends."""
    from kdcore.sweep import finished_studies  # torch: only once a sweep runs
    from kdcore.tracking import MlflowTracker

    return len(finished_studies(MlflowTracker.for_run(sweep_id, uri), sweep_id))


def progress_text(finished: int, total: int | None) -> str:
    """``"5 of 12 studies finished"``, or without the total when it is not known."""
    return f"{finished} of {total} studies finished" if total else f"{finished} studies finished"
