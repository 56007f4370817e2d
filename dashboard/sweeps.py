"""The sweeps in the store, read for the Sweep page.

A sweep is a run tagged ``kd.role = sweep``; its studies carry ``kd.sweep_id``, ``kd.sweep_point`` and
``kd.sweep_key``. A sweep that has ended logged ``summary.json`` (:func:`kdcore.sweep.summarise`); one still
running (or stopped before it summarised) gets the same summary here, computed by that same function from the
studies finished so far, so both read alike. Like :mod:`dashboard.data`, these readers never raise on damaged
data: what cannot be used is named in a problem and the page goes on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st
import yaml

from dashboard import data, selection
from dashboard.text import one_line
from kdcore import tracking
from kdcore.ownership import GONE_REASON, orphaned
from kdcore.study import FAILURE_TAG
from kdcore.sweep import (
    BASELINE_ACC,
    PRUNED,
    SPEC_FILE,
    STUDENT_ACC,
    SUMMARY_FILE,
    SWEEP_ROLE,
    VAL_BASELINE_ACC,
    VAL_STUDENT_ACC,
    Outcome,
    summarise,
)
from kdcore.sweep_spec import Point, SweepSpec, count
from kdcore.tracker import STUDY_ROLE

PARAM = "sweep"  # ?sweep=<the first 8 characters of its id>, so other pages can link to a sweep
ENDED = ("FINISHED", "FAILED", "KILLED")
STUDY_METRICS = {STUDENT_ACC: "student_acc", BASELINE_ACC: "baseline_acc", VAL_STUDENT_ACC: "val_student_acc",
                 VAL_BASELINE_ACC: "val_baseline_acc"}
STUDY_COLUMNS = ["study_id", "sweep_id", "point", "key", "seed", "values", "params", "status", "state", "reason",
                 "start_time", *STUDY_METRICS.values()]
STATES = ("finished", "failed", "pruned", "running")  # how a study counts towards its sweep's progress
SWEEP_COLUMNS = ["sweep_id", "name", "status", "start_time", "reason", *STATES]
PRUNED_REASON = "pruned"  # how a search's reason for stopping a study begins (its study ends KILLED)


@dataclass(frozen=True)
class Sweep:
    """One sweep as the page shows it: ``summary`` as :func:`kdcore.sweep.summarise` returns it, whether it was
    computed here from the finished studies (``live``), the studies its file asks for (``planned``, None when
    its file cannot be read) and what could not be used."""

    summary: dict[str, Any]
    live: bool
    planned: int | None
    problems: list[str] = field(default_factory=list)


def _search(uri: str, where: str) -> pd.DataFrame:
    """Runs of every experiment matching an MLflow filter, one row each with ``tags.*``, ``params.*`` and
    ``metrics.*`` columns (the frame :mod:`kdcore.tracking`'s own readers build)."""
    return tracking.runs_frame(uri, where)


def _status(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each run's status and failure reason, a run whose owning process is gone counted FAILED."""
    tags = [c for c in frame.columns if c.startswith("tags.kd.")]
    statuses, reasons = [], []
    for _, row in frame.iterrows():
        owner = {c.removeprefix("tags."): row[c] for c in tags if isinstance(row[c], str)}
        gone = orphaned(str(row["status"]), owner)
        statuses.append("FAILED" if gone else row["status"])
        reasons.append(GONE_REASON if gone else one_line(owner.get(FAILURE_TAG), 4000))
    return pd.Series(statuses, index=frame.index), pd.Series(reasons, index=frame.index)


@st.cache_data(ttl=data.CACHE_SECONDS, show_spinner=False)
def studies(uri: str) -> pd.DataFrame:
    """Every study that belongs to a sweep, newest first: its sweep, point, key, seed and axis values, its status
    (``state``: one of :data:`STATES`) and failure reason, and the four accuracies a sweep compares."""
    frame = _search(uri, f"tags.`kd.role` = '{STUDY_ROLE}' AND tags.`kd.sweep_id` LIKE '%'")
    if frame.empty:
        return pd.DataFrame(columns=STUDY_COLUMNS)
    status, reason = _status(frame)
    params = [c for c in frame.columns if c.startswith("params.")]
    tags = frame.reindex(columns=["tags.kd.sweep_point", "tags.kd.sweep_key", "tags.kd.sweep_values"])
    found = pd.DataFrame({
        "study_id": frame["run_id"], "sweep_id": frame["tags.kd.sweep_id"],
        "point": tags["tags.kd.sweep_point"].fillna(""), "key": tags["tags.kd.sweep_key"].fillna(""),
        "values": tags["tags.kd.sweep_values"].map(_tagged_values),
        "params": [{c.removeprefix("params."): row[c] for c in params if isinstance(row[c], str)}
                   for _, row in frame.iterrows()],
        "status": status, "state": [_state(s, r) for s, r in zip(status, reason, strict=True)], "reason": reason,
        "start_time": frame["start_time"],
        **{name: _finite(frame, f"metrics.{key}") for key, name in STUDY_METRICS.items()}})
    found["seed"] = found["key"].map(_seed)
    return found[STUDY_COLUMNS]


def _state(status: str, reason: str) -> str:
    if status == "FINISHED":
        return "finished"
    if status == "KILLED" and reason.startswith(PRUNED_REASON):
        return "pruned"
    return "running" if status in ("RUNNING", "SCHEDULED") else "failed"


def _tagged_values(raw: object) -> dict[str, Any] | None:
    """The study's axis values from its ``kd.sweep_values`` tag (JSON); None where it has none (a study tagged
    before that tag existed) or it is not a JSON mapping."""
    try:
        values = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return values if isinstance(values, dict) else None


def _finite(frame: pd.DataFrame, column: str) -> list[float | None]:
    """A metric column as floats, missing or infinite values (MLflow keeps +-inf as +-1.797e308) as None."""
    if column not in frame:
        return [None] * len(frame)
    numbers = pd.to_numeric(frame[column], errors="coerce")
    return [float(v) if math.isfinite(v) and abs(v) < data.HUGE else None for v in numbers]


def _seed(key: str) -> int | None:
    """The seed in a point key (``p03-s1`` -> 1)."""
    seed = key.rpartition("-s")[2]
    return int(seed) if key and seed.isdigit() else None


def current(found: pd.DataFrame) -> pd.DataFrame:
    """One study per point key: the newest FINISHED one, else the newest (a point re-run after it failed)."""
    if found.empty:
        return found
    ranked = found.assign(_done=found["status"] == "FINISHED").sort_values(["_done", "start_time"],
                                                                         ascending=False)
    return ranked.drop_duplicates(["sweep_id", "key"]).drop(columns="_done").sort_values("start_time")


@st.cache_data(ttl=data.CACHE_SECONDS, show_spinner=False)
def listing(uri: str) -> pd.DataFrame:
    """Every sweep, newest first, with its status, failure reason and how many of its studies finished,
    failed or are running."""
    frame = _search(uri, f"tags.`kd.role` = '{SWEEP_ROLE}'")
    if frame.empty:
        return pd.DataFrame(columns=SWEEP_COLUMNS)
    status, reason = _status(frame)
    names = frame.get("tags.kd.sweep_name", frame["name"]).fillna(frame["name"])
    found = pd.DataFrame({"sweep_id": frame["run_id"], "name": names.map(one_line), "status": status,
                          "start_time": frame["start_time"], "reason": reason})
    states = current(studies(uri)).groupby("sweep_id")["state"]
    for state in STATES:
        counted = states.agg(lambda s, state=state: int((s == state).sum()))
        found[state] = found["sweep_id"].map(counted).fillna(0).astype(int)
    return found.sort_values("start_time", ascending=False).reset_index(drop=True)[SWEEP_COLUMNS]


def resolve(ref: str | None, ids: list[str]) -> str | None:
    """The sweep id that ``ref`` (a whole id or a unique start of it) names among ``ids``; None if none does."""
    ref = (ref or "").strip()
    found = [sweep_id for sweep_id in ids if ref and sweep_id.startswith(ref)]
    return ref if ref in found else found[0] if len(found) == 1 else None


@st.cache_data(ttl=data.CACHE_SECONDS, show_spinner=False)
def stored_summary(uri: str, sweep_id: str) -> data.Loaded:
    """The sweep's ``summary.json``: None without a problem when it has none, None with the problem when it
    cannot be used."""
    try:
        raw = tracking.read_artifact(sweep_id, SUMMARY_FILE, uri)
    except Exception:  # MLflow raises its own types (or OSError) for a missing artifact
        return data.Loaded(None)
    try:
        summary = json.loads(raw)
    except ValueError as err:
        return data.Loaded(None, f"its {SUMMARY_FILE} is not valid JSON ({one_line(err, 120)})")
    rows = summary.get("points") if isinstance(summary, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("values"), dict)
                                             and isinstance(r.get("point"), str) for r in rows):
        return data.Loaded(None, f"its {SUMMARY_FILE} has no list of points with their values")
    return data.Loaded(summary)


@st.cache_data(ttl=data.CACHE_SECONDS * 10, show_spinner=False)
def spec(uri: str, sweep_id: str, name: str) -> data.Loaded:
    """The sweep file it was run from (``sweep.yaml``) as a :class:`SweepSpec`; None, with the problem, when it
    cannot be read."""
    try:
        raw = yaml.safe_load(tracking.read_artifact(sweep_id, SPEC_FILE, uri).decode())
        return data.Loaded(SweepSpec.model_validate({**raw, "name": name or "sweep"}))
    except Exception as err:  # absent, not YAML, or a sweep file this version no longer accepts
        return data.Loaded(None, f"its {SPEC_FILE} cannot be read ({one_line(err, 160)})")


def load(uri: str, sweep: pd.Series) -> Sweep:
    """The sweep's summary: its ``summary.json`` once it has ended, else computed from its studies so far."""
    found = spec(uri, sweep["sweep_id"], sweep["name"])
    problems = [found.problem] if found.problem else []
    if sweep["status"] in ENDED:
        stored = stored_summary(uri, sweep["sweep_id"])
        if stored.value is not None:
            return Sweep(stored.value, False, count(found.value) if found.value else None, problems)
        if stored.problem:
            problems.append(f"{stored.problem}; the rows below are computed from its studies")
    everything = current(studies(uri))
    mine = everything[everything["sweep_id"] == sweep["sweep_id"]]
    parsed = found.value or _bare_spec(sweep["name"], mine)
    summary = live_summary(sweep["sweep_id"], parsed, mine)
    return Sweep(summary, True, count(found.value) if found.value else None, problems)


def _bare_spec(name: str, mine: pd.DataFrame) -> SweepSpec:
    """A stand-in for a sweep file that cannot be read: its name and seeds, no axes (points are then told
    apart by their id only)."""
    seeds = sorted({int(s) for s in mine["seed"].dropna()}) or [0]
    return SweepSpec.model_construct(base=Path("."), name=name, seeds=seeds, grid={})


def live_summary(sweep_id: str, parsed: SweepSpec, mine: pd.DataFrame) -> dict[str, Any]:
    """:func:`kdcore.sweep.summarise` over the sweep's ended studies (one per key), in point and seed order.

    ``summarise`` reads of each point only its id, values, seed and label, and nothing from its tracker, so
    the points are rebuilt from the studies' tags and params, without their configs."""
    axes = [name for fields in parsed.axes().values() for name in fields]
    ended = mine[(mine["state"] != "running") & (mine["point"] != "") & mine["seed"].notna()]
    seeds = list(parsed.seeds)
    ended = ended.assign(_seed=ended["seed"].map(lambda s: seeds.index(s) if s in seeds else len(seeds)))
    outcomes = [_outcome(row, axes) for _, row in ended.sort_values(["point", "_seed"]).iterrows()]
    return summarise(sweep_id, parsed, outcomes)


def _outcome(row: pd.Series, axes: list[str]) -> Outcome:
    tagged = row["values"] if isinstance(row["values"], dict) else None
    values = {axis: tagged.get(axis) if tagged is not None else _value(row["params"].get(axis)) for axis in axes}
    point = Point(row["point"], values, int(row["seed"]), None)  # type: ignore[arg-type]  # no config needed
    if row["state"] != "finished":
        status = PRUNED if row["state"] == "pruned" else row["status"]
        return Outcome(point, row["study_id"], status, reason=row["reason"] or row["status"].lower())
    student, baseline, val_student, val_baseline = (None if pd.isna(row[name]) else float(row[name])
                                                    for name in STUDY_METRICS.values())
    return Outcome(point, row["study_id"], "FINISHED", student, baseline, val_student_acc=val_student,
                   val_baseline_acc=val_baseline)


def _value(text: str | None) -> Any:
    """A config field's value from its param text (``4.0``, ``true``, ``[8, 16]``), parsed as a sweep file is."""
    if text is None:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def axes(summary: dict[str, Any]) -> list[str]:
    """The sweep's varied fields, in the sweep file's order."""
    listed = summary.get("axes")
    if isinstance(listed, list) and all(isinstance(a, str) for a in listed):
        return list(listed)
    return list(dict.fromkeys(a for row in summary["points"] for a in row["values"]))


def points(summary: dict[str, Any]) -> pd.DataFrame:
    """One row per point, the highest gain first (points without a finished study last): its axis values, mean
    gain and interval (fractions), seeds, verdicts, p-values, validation gain, studies and whether it is best."""
    varied = axes(summary)
    rows = [{"point": r["point"], "label": one_line(r.get("label", "")), **{a: r["values"].get(a) for a in varied},
             "mean": r.get("mean"), "low": r.get("low"), "high": r.get("high"), "n": len(r.get("seeds") or []),
             "verdict": r.get("verdict") or r.get("difference", ""), "holm_verdict": r.get("holm_verdict"),
             "p_value": r.get("p_value"), "p_holm": r.get("p_holm"), "val_mean": r.get("val_mean"),
             "study_ids": list(r.get("study_ids") or []), "best": r["point"] == summary.get("best")}
            for r in summary["points"]]
    frame = pd.DataFrame(rows, columns=["point", "label", *varied, "mean", "low", "high", "n", "verdict",
                                        "holm_verdict", "p_value", "p_holm", "val_mean", "study_ids", "best"])
    for column in ("mean", "low", "high", "p_value", "p_holm", "val_mean"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.sort_values("mean", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def seeds(summary: dict[str, Any]) -> pd.DataFrame:
    """One row per (point, seed) with a finished study: the axis values, ``student`` and ``baseline`` test
    accuracy; what the charts aggregate."""
    varied = axes(summary)
    rows = [{"point": r["point"], **{a: r["values"].get(a) for a in varied}, "seed": seed, "student": s,
             "baseline": b}
            for r in summary["points"]
            for seed, s, b in zip(r.get("seeds") or [], r.get("student_acc") or [], r.get("baseline_acc") or [],
                                  strict=False)
            if isinstance(s, int | float) and isinstance(b, int | float)]
    return pd.DataFrame(rows, columns=["point", *varied, "seed", "student", "baseline"])


def tested(summary: dict[str, Any]) -> int:
    """How many points have a p-value, the family Holm's correction runs over."""
    return sum(row.get("p_holm") is not None for row in summary["points"])


def link(study_ids: list[str]) -> str | None:
    """Where a point's studies open: its one study in Study detail, or its seeds side by side in Compare."""
    if not study_ids:
        return None
    if len(study_ids) == 1:
        return f"/study?{urlencode({'id': study_ids[0]})}"
    return f"/compare?{urlencode(selection.query(study_ids), safe=',')}"
