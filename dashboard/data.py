"""Cached reads over :mod:`kdcore.tracking` for the pages; the only place the dashboard reads MLflow.

Reads are cached for a short time and cleared whenever the dashboard sees a study finish, so a
page never shows a stale table for long and never pays for the same query twice in a rerun.

A store is shared and may hold anything: a run without its role tag, an infinite metric, an
artifact deleted or cut off. The readers never raise on such data. They hand pages what can be
used and say what cannot: a role-less run gets a stand-in role (``role_missing``), infinite numbers
become missing ones (listed in ``infinite``), and an artifact comes as :class:`Loaded`, its value
with the problem that kept it from being read.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import streamlit as st
import yaml

from dashboard.text import one_line
from kdcore import tracking
from kdcore.config import is_teacher
from kdcore.study_list import STUDY_COLUMNS
from kdcore.tracker import role_key
from kdcore.tracking import resolve_uri

ATTENTIONS = "attentions.npz"

CACHE_SECONDS = 30
CURVE_METRICS = ["train/loss", "val/acc", "val/loss", "train/acc", "train/loss_ce", "train/loss_kd"]
HUGE = 1e308  # MLflow's SQL store keeps +-inf as +-1.797e308: both are infinite here
UNKNOWN_ROLE = "unknown"  # a run without kd.role is shown as "unknown-<its id>"
STUDY_METRICS = {name: key.removeprefix("metrics.") for key, name in STUDY_COLUMNS.items()
                 if key.startswith("metrics.")}  # list_studies column -> metric key


class Loaded(NamedTuple):
    """An artifact as a page can use it: its parsed ``value`` (a default when it is absent or unusable) and,
    when it cannot be used, the ``problem`` in words."""

    value: Any
    problem: str | None = None


def store_uri() -> str:
    return resolve_uri(None)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def studies(uri: str) -> pd.DataFrame:
    """Every study, with its finding codes as a list (from the ``kd.findings`` tag) and a display label."""
    frame = _finite(tracking.list_studies(uri), STUDY_METRICS)
    frame["finding_codes"] = frame["findings"].map(finding_codes)
    frame["label"] = [one_line(name) or study_id for name, study_id in zip(frame["name"], frame["study_id"],
                                                                          strict=True)]
    return frame


def _finite(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """``columns`` (column -> metric key) as numbers, infinite ones missing; ``infinite`` lists per row the
    metric keys that were infinite (a NaN cannot be told from a metric never logged, so it is not listed)."""
    frame = frame.copy()
    infinite = pd.Series([[] for _ in range(len(frame))], index=frame.index, dtype=object)
    for column, key in columns.items():
        if column not in frame:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        huge = values.abs() >= HUGE
        frame[column] = values.mask(huge)
        for row in frame.index[huge]:
            infinite[row] = [*infinite[row], key]
    frame["infinite"] = infinite
    return frame


def finding_codes(tag: object) -> list[str]:
    """The codes in a ``kd.findings`` tag (a comma list; missing or empty = none)."""
    return [code.strip() for code in tag.split(",") if code.strip()] if isinstance(tag, str) else []


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def runs(uri: str, study_ids: tuple[str, ...]) -> pd.DataFrame:
    """Role runs of the given studies, labelled ``<study name> · <role>``."""
    frame = _role_runs(tracking.list_runs(list(study_ids), uri))
    if frame.empty:
        return frame
    names = studies(uri).set_index("study_id")["label"]
    frame["study_label"] = frame["tags.kd.study_id"].map(names).fillna(frame["tags.kd.study_id"])
    frame["label"] = frame["study_label"] + " · " + frame["tags.kd.role"]
    return frame


def _role_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Role runs as pages use them: every run has a role (``unknown-<id>`` where its kd.role tag is missing,
    marked in ``role_missing``) and finite metrics (see :func:`_finite`)."""
    if frame.empty:
        return frame
    roles = frame["tags.kd.role"] if "tags.kd.role" in frame else pd.Series(np.nan, index=frame.index)
    missing = ~roles.map(lambda role: isinstance(role, str) and bool(role.strip()))
    stand_in = UNKNOWN_ROLE + "-" + frame["run_id"].astype(str).str[:8]
    frame = frame.assign(**{"tags.kd.role": roles.where(~missing, stand_in), "role_missing": missing})
    return _finite(frame, {c: c.removeprefix("metrics.") for c in frame.columns if c.startswith("metrics.")})


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def histories(uri: str, run_ids: tuple[str, ...], keys: tuple[str, ...]) -> pd.DataFrame:
    """Metric histories (run_id, key, step, value, timestamp); an infinite value is a missing one."""
    frame = tracking.metric_history(list(run_ids), list(keys), uri)
    values = pd.to_numeric(frame["value"], errors="coerce")
    return frame.assign(value=values.mask(values.abs() >= HUGE))


@st.cache_data(ttl=CACHE_SECONDS * 10, show_spinner=False)
def predictions(uri: str, run_id: str) -> dict[str, np.ndarray]:
    """A role's test predictions (``test_probs`` (N, K), ``test_labels`` (N,), ...); {} when it has none or
    they do not fit together."""
    try:
        found = tracking.load_predictions(run_id, uri)
    except Exception:  # a role that failed before it was evaluated has no predictions
        return {}
    probs, labels = found.get("test_probs"), found.get("test_labels")
    if probs is None or labels is None or np.ndim(probs) != 2 or np.ndim(labels) != 1 or len(probs) != len(labels):
        return {}
    return found


def shared_split(found: list[dict[str, np.ndarray]]) -> str:
    """``val`` when every role has validation predictions (the split the findings read), else ``test``, which
    every recorded role has (a study recorded before validation predictions were kept)."""
    return "val" if all("val_probs" in arrays and "val_labels" in arrays for arrays in found) else "test"


@st.cache_data(ttl=CACHE_SECONDS * 10, show_spinner=False)
def attentions(uri: str, run_id: str) -> dict[str, np.ndarray]:
    """A role's logged attention maps (``maps``: layers, N, heads, T, T) and their ``inputs``; {} when it has none."""
    try:
        with np.load(io.BytesIO(tracking.read_artifact(run_id, ATTENTIONS, uri))) as found:
            maps = {key: found[key] for key in found.files}
    except Exception:  # not a transformer, a role that failed before it was evaluated, or a damaged file
        return {}
    return maps if {"maps", "inputs"} <= maps.keys() and np.ndim(maps["maps"]) == 5 else {}


@st.cache_data(show_spinner=False)
def test_samples(config_text: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` test inputs and labels of a study's dataset, rebuilt from its config (generated or packaged
    data only: the same split the study was evaluated on)."""
    from kdcore.config import config_from_yaml
    from kdcore.data.splits import load_dataset

    test = load_dataset(config_from_yaml(config_text).data).test
    return test.x[:k].numpy(), test.y[:k].numpy()


def _artifact(uri: str, run_id: str, path: str) -> bytes | None:
    """An artifact's bytes, or None where the run has none (or the store cannot give it)."""
    try:
        return tracking.read_artifact(run_id, path, uri)
    except Exception:  # MLflow raises its own types (or OSError) for a missing artifact
        return None


@st.cache_data(ttl=CACHE_SECONDS * 10, show_spinner=False)
def config_yaml(uri: str, study_id: str) -> Loaded:
    """The study's config as YAML text (``config.yaml``); None, with the problem, when it has none or the file
    is not a YAML mapping."""
    raw = _artifact(uri, study_id, "config.yaml")
    if raw is None:
        return Loaded(None, "it has no config.yaml")
    try:
        text = raw.decode()
        parsed = yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        return Loaded(None, f"its config.yaml cannot be read ({one_line(err, 120)})")
    if not isinstance(parsed, dict):
        return Loaded(None, "its config.yaml is not a YAML mapping")
    return Loaded(text)


def _json(uri: str, study_id: str, path: str) -> Loaded:
    """A JSON artifact of the study: None and no problem when it has none (made before it was recorded, or
    still running); None and the problem when it is there but is not JSON."""
    raw = _artifact(uri, study_id, path)
    if raw is None:
        return Loaded(None)
    try:
        return Loaded(json.loads(raw))
    except ValueError as err:  # JSONDecodeError, or bytes that are not text
        return Loaded(None, f"its {path} is not valid JSON ({one_line(err, 120)})")


def _numbers(raw: object) -> dict[str, float]:
    """The finite numbers of an evidence or gate mapping, by name; anything else is left out."""
    if not isinstance(raw, dict):
        return {}
    return {str(name): float(value) for name, value in raw.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)}


def _sweep(raw: object) -> dict[str, list[float | str]]:
    """A finding's sweep (config key -> values to run one study each with); values that are not a finite number
    or text are left out, and so is a key without any."""
    if not isinstance(raw, dict):
        return {}
    sweep = {}
    for key, values in raw.items():
        kept = [v for v in values if isinstance(v, str) or (isinstance(v, int | float) and not isinstance(v, bool)
                                                             and math.isfinite(v))] if isinstance(values, list) else []
        if isinstance(key, str) and key.strip() and kept:
            sweep[key] = kept
    return sweep


def _finding(raw: object) -> dict[str, Any] | None:
    """One finding with every field a page reads, or None where it has no code."""
    if not isinstance(raw, dict) or not isinstance(raw.get("code"), str) or not raw["code"].strip():
        return None
    overrides = raw.get("fix_overrides")
    return {"code": raw["code"], "title": str(raw.get("title") or raw["code"]),
            "severity": str(raw.get("severity") or "warning"), "evidence": _numbers(raw.get("evidence")),
            "fix": str(raw.get("fix") or ""),
            "fix_overrides": [o for o in overrides if isinstance(o, str)] if isinstance(overrides, list) else [],
            "sweep": _sweep(raw.get("sweep"))}


def _gate(raw: object) -> dict[str, Any] | None:
    """One gate with every field a page reads, or None where it has no number."""
    number = raw.get("number") if isinstance(raw, dict) else None
    if not isinstance(number, int) or isinstance(number, bool):
        return None
    return {"number": number, "name": str(raw.get("name") or f"gate {number}"),
            "status": str(raw.get("status") or "not measurable"), "numbers": _numbers(raw.get("numbers")),
            "reason": str(raw.get("reason") or "")}


def _records(loaded: Loaded, path: str, parse: Any) -> Loaded:
    """A JSON list of records, each through ``parse`` (None drops it); the problem says how many were dropped."""
    if loaded.value is None:
        return loaded
    items = loaded.value if isinstance(loaded.value, list) else [loaded.value]
    kept = [record for record in map(parse, items) if record is not None]
    if not isinstance(loaded.value, list):
        return Loaded(kept, f"its {path} is not a list")
    if len(kept) < len(items):
        return Loaded(kept, f"{len(items) - len(kept)} of the {len(items)} entries of its {path} are malformed")
    return Loaded(kept)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def findings(uri: str, study_id: str) -> Loaded:
    """The study's findings (``findings.json``): code, title, severity, evidence, fix, fix_overrides, sweep; []
    when it has none."""
    loaded = _records(_json(uri, study_id, "findings.json"), "findings.json", _finding)
    return Loaded([] if loaded.value is None else loaded.value, loaded.problem)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def gates(uri: str, study_id: str) -> Loaded:
    """The study's quality gates (``gates.json``) in order; None when it was never diagnosed."""
    loaded = _records(_json(uri, study_id, "gates.json"), "gates.json", _gate)
    return Loaded(sorted(loaded.value, key=lambda g: g["number"]) if loaded.value is not None else None,
                  loaded.problem)


def clear() -> None:
    """Forget every cached read (a study finished, or samples were loaded)."""
    st.cache_data.clear()


def progress(uri: str, study_id: str) -> pd.DataFrame:
    """Live progress of a study's roles: epoch, loss, val accuracy and an ETA (not cached)."""
    frame = _role_runs(tracking.list_runs([study_id], uri))
    columns = ["role", "status", "epoch", "epochs", "loss", "val_acc", "eta_s"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    history = tracking.metric_history(list(frame["run_id"]), ["val/acc", "train/loss"], uri)
    rows = []
    for _, record in frame.iterrows():
        role = record["tags.kd.role"]
        planned = record.get("params.train.epochs")
        if is_teacher(role) and record.get("params.train.teacher_epochs"):
            planned = record.get("params.train.teacher_epochs")
        epochs = int(planned) if isinstance(planned, str) and planned.isdigit() else None
        mine = history[history["run_id"] == record["run_id"]]
        val = mine[mine["key"] == "val/acc"].sort_values("step")
        loss = mine[mine["key"] == "train/loss"].sort_values("step")
        done = len(val)
        eta = math.nan
        if record["status"] == "RUNNING" and epochs and done >= 1:
            elapsed = (val["timestamp"].iloc[-1] - record["start_time"].value / 1e6) / 1000
            eta = max(elapsed / done * (epochs - done), 0.0)
        rows.append({"role": role, "status": record["status"], "epoch": done, "epochs": epochs,
                     "loss": loss["value"].iloc[-1] if len(loss) else math.nan,
                     "val_acc": val["value"].iloc[-1] if len(val) else math.nan, "eta_s": eta})
    rows.sort(key=lambda row: role_key(row["role"]))
    return pd.DataFrame(rows, columns=columns)


SIBLING_COLUMNS = ["of", "study_id", "seed", "config"]


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def seed_siblings(uri: str, study_ids: tuple[str, ...]) -> Loaded:
    """Each study with its seed siblings, so a page can give numbers over seeds: rows ``of`` (the study asked
    about), ``study_id`` (the study itself first, then each finished sibling: same experiment, same config but
    for train.seed, as :func:`kdcore.siblings.seed_sibling_ids` finds them), ``seed`` and ``config`` (a key
    equal for studies of one configuration). A study whose siblings cannot be read stands alone, and the
    problem says how many."""
    from kdcore.siblings import SEED, comparable, seed_sibling_ids
    from kdcore.tracking import MlflowTracker

    rows: list[tuple[str, str, str | None, str]] = []
    failed: list[str] = []
    for study_id in study_ids:
        try:
            tracker = MlflowTracker.for_run(study_id, uri)
            params = tracker.get_run(study_id).params
            config = f"{tracker.experiment_id}|{sorted(comparable(params, (SEED,)).items())}"
            found = [(study_id, params.get(SEED))] + [(other, tracker.get_run(other).params.get(SEED))
                                                     for other in seed_sibling_ids(tracker, study_id)]
        except Exception as err:  # a damaged run or an unreadable config: the study is its only seed
            failed.append(one_line(err, 120))
            found, config = [(study_id, None)], study_id
        rows += [(study_id, member, seed, config) for member, seed in found]
    frame = pd.DataFrame(rows, columns=SIBLING_COLUMNS)
    if not failed:
        return Loaded(frame)
    studies = "study" if len(failed) == 1 else "studies"
    return Loaded(frame, f"the seeds of {len(failed)} {studies} could not be read ({failed[0]}); each is shown alone")
