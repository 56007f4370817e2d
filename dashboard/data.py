"""Cached reads over :mod:`kdcore.tracking` for the pages; the only place the dashboard reads MLflow.

Reads are cached for a short time and cleared whenever the dashboard sees a study finish, so a
page never shows a stale table for long and never pays for the same query twice in a rerun.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from kdcore import tracking
from kdcore.tracker import role_key
from kdcore.tracking import resolve_uri

ATTENTIONS = "attentions.npz"

CACHE_SECONDS = 30
CURVE_METRICS = ["train/loss", "val/acc", "val/loss", "train/acc", "train/loss_ce", "train/loss_kd"]


def store_uri() -> str:
    return resolve_uri(None)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def studies(uri: str) -> pd.DataFrame:
    """Every study, with its finding codes as a list (from the ``kd.findings`` tag) and a display label."""
    frame = tracking.list_studies(uri)
    frame["finding_codes"] = frame["findings"].map(finding_codes)
    frame["label"] = frame["name"].fillna(frame["study_id"])
    return frame


def finding_codes(tag: object) -> list[str]:
    """The codes in a ``kd.findings`` tag (a comma list; missing or empty = none)."""
    return [code.strip() for code in tag.split(",") if code.strip()] if isinstance(tag, str) else []


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def runs(uri: str, study_ids: tuple[str, ...]) -> pd.DataFrame:
    """Role runs of the given studies, labelled ``<study name> · <role>``."""
    frame = tracking.list_runs(list(study_ids), uri)
    if frame.empty:
        return frame
    names = studies(uri).set_index("study_id")["label"]
    frame["study_label"] = frame["tags.kd.study_id"].map(names).fillna(frame["tags.kd.study_id"])
    frame["label"] = frame["study_label"] + " · " + frame["tags.kd.role"]
    return frame


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def histories(uri: str, run_ids: tuple[str, ...], keys: tuple[str, ...]) -> pd.DataFrame:
    return tracking.metric_history(list(run_ids), list(keys), uri)


@st.cache_data(ttl=CACHE_SECONDS * 10, show_spinner=False)
def predictions(uri: str, run_id: str) -> dict[str, np.ndarray]:
    try:
        return tracking.load_predictions(run_id, uri)
    except Exception:  # a role that failed before it was evaluated has no predictions
        return {}


@st.cache_data(ttl=CACHE_SECONDS * 10, show_spinner=False)
def attentions(uri: str, run_id: str) -> dict[str, np.ndarray]:
    """A role's logged attention maps (``maps``: layers, N, heads, T, T) and their ``inputs``; {} when it has none."""
    try:
        raw = tracking.read_artifact(run_id, ATTENTIONS, uri)
    except Exception:  # not a transformer, or a role that failed before it was evaluated
        return {}
    with np.load(io.BytesIO(raw)) as found:
        return {key: found[key] for key in found.files}


@st.cache_data(show_spinner=False)
def test_samples(config_text: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` test inputs and labels of a study's dataset, rebuilt from its config (generated or packaged
    data only: the same split the study was evaluated on)."""
    from kdcore.config import config_from_yaml
    from kdcore.data.splits import load_dataset

    test = load_dataset(config_from_yaml(config_text).data).test
    return test.x[:k].numpy(), test.y[:k].numpy()


@st.cache_data(ttl=CACHE_SECONDS * 10, show_spinner=False)
def config_yaml(uri: str, study_id: str) -> str:
    return tracking.read_artifact(study_id, "config.yaml", uri).decode()


def _artifact_json(uri: str, study_id: str, path: str) -> Any:
    """A JSON artifact of the study, or None where it has none (made before it was recorded, or still running)."""
    try:
        raw = tracking.read_artifact(study_id, path, uri)
    except Exception:  # MLflow raises its own types (or OSError) for a missing artifact
        return None
    return json.loads(raw)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def findings(uri: str, study_id: str) -> list[dict[str, Any]]:
    """The study's findings (``findings.json``): code, title, severity, evidence, fix, fix_overrides."""
    return _artifact_json(uri, study_id, "findings.json") or []


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def gates(uri: str, study_id: str) -> list[dict[str, Any]] | None:
    """The study's ten quality gates (``gates.json``) in order; None when it was never diagnosed."""
    return _artifact_json(uri, study_id, "gates.json")


def clear() -> None:
    """Forget every cached read (a study finished, or samples were loaded)."""
    st.cache_data.clear()


def progress(uri: str, study_id: str) -> pd.DataFrame:
    """Live progress of a study's roles: epoch, loss, val accuracy and an ETA (not cached)."""
    frame = tracking.list_runs([study_id], uri)
    columns = ["role", "status", "epoch", "epochs", "loss", "val_acc", "eta_s"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    history = tracking.metric_history(list(frame["run_id"]), ["val/acc", "train/loss"], uri)
    rows = []
    for _, record in frame.iterrows():
        role = record["tags.kd.role"]
        planned = record.get("params.train.epochs")
        if role == "teacher" and record.get("params.train.teacher_epochs"):
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
