"""Learn: the capacity gap, from every finished study with a teacher, a baseline and a student."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard import data, lesson_charts, lessons
from dashboard.text import md
from kdcore import advisor

ZONES = [(0.0, advisor.SIMILAR_PERFORMANCE, "similar: learn together"),
         (advisor.SIMILAR_PERFORMANCE, advisor.ONE_ASSISTANT_PERFORMANCE, "direct"),
         (advisor.ONE_ASSISTANT_PERFORMANCE, advisor.PROGRESSIVE_PERFORMANCE, "one assistant"),
         (advisor.PROGRESSIVE_PERFORMANCE, math.inf, "several assistants")]


def gap_points(uri: str, studies: pd.DataFrame) -> pd.DataFrame:
    """One row per study with the three roles: sizes, accuracies, the performance gap and the gain."""
    runs = data.runs(uri, tuple(studies.index))
    if runs.empty:
        return pd.DataFrame(columns=["dataset", "params", "baseline", "student", "ratio", "gain", "label"])
    table = runs.pivot_table(index="tags.kd.study_id", columns="tags.kd.role", values="metrics.test/acc")
    params = runs[runs["tags.kd.role"] == "student"].set_index("tags.kd.study_id")["metrics.model/params"]
    table = table.dropna(subset=[c for c in ("teacher", "baseline", "student") if c in table])
    if not {"teacher", "baseline", "student"} <= set(table.columns):
        return pd.DataFrame(columns=["dataset", "params", "baseline", "student", "ratio", "gain", "label"])
    out = pd.DataFrame({
        "dataset": studies.loc[table.index, "dataset"], "params": params.reindex(table.index),
        "baseline": table["baseline"], "student": table["student"],
        "ratio": table["teacher"] / table["baseline"].clip(lower=1e-9),
        "gain": 100 * (table["student"] - table["baseline"]), "label": studies.loc[table.index, "label"]})
    return out.dropna()


def render() -> None:
    st.title("Capacity gap")
    st.caption("A student can only learn what it can represent. The gap is the teacher's accuracy over the "
               "student's accuracy when trained alone: small gaps distil directly, wide ones need assistants "
               "in between, and similar models do better learning together. Every study with a teacher, a "
               "baseline and a student in this store is a point here.")
    uri = data.store_uri()
    studies = lessons.finished_studies(uri)
    points = gap_points(uri, studies) if not studies.empty else pd.DataFrame()
    if points.empty:
        lessons.study_named(uri, "mnist1d cnn1d->mlp w8 kd seed0")
        return
    st.plotly_chart(lesson_charts.size_against_accuracy(points), key="learn-gap-size")
    st.plotly_chart(lesson_charts.gap_zones(points, ZONES), key="learn-gap-zones")
    worst = points.sort_values("gain").iloc[0]
    st.caption(f"{len(points)} studies. The largest loss: {md(worst['label'])} ({worst['gain']:+.1f} points at a "
               f"{worst['ratio']:.2f}x gap).")


render()
