"""Learn: the capacity gap, from every finished study with a teacher, a baseline and a student."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard import data, lesson_charts, lessons, numbers
from kdcore import advisor

# The survey's capacity-gap table with the advisor's thresholds: (low, high, where, what it recommends).
ZONES = [(0.0, advisor.SIMILAR_PERFORMANCE, f"below {advisor.SIMILAR_PERFORMANCE:g}x", "learn together (online)"),
         (advisor.SIMILAR_PERFORMANCE, advisor.ONE_ASSISTANT_PERFORMANCE,
          f"{advisor.SIMILAR_PERFORMANCE:g}–{advisor.ONE_ASSISTANT_PERFORMANCE:g}x", "distil directly"),
         (advisor.ONE_ASSISTANT_PERFORMANCE, advisor.PROGRESSIVE_PERFORMANCE,
          f"{advisor.ONE_ASSISTANT_PERFORMANCE:g}–{advisor.PROGRESSIVE_PERFORMANCE:g}x", "add one teacher assistant"),
         (advisor.PROGRESSIVE_PERFORMANCE, math.inf, f"{advisor.PROGRESSIVE_PERFORMANCE:g}x and more",
          "two or more assistants (progressive)")]  # advisor.MIN_MULTI_STEP_ASSISTANTS
COLUMNS = ["dataset", "params", "baseline", "student", "ratio", "gain", "label", "provoked"]


def gap_points(uri: str, studies: pd.DataFrame) -> pd.DataFrame:
    """One row per study with the three roles: sizes, accuracies, the performance gap, the gain (points) and
    whether it was provoked to fail."""
    runs = data.runs(uri, tuple(studies.index))
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    table = runs.pivot_table(index="tags.kd.study_id", columns="tags.kd.role", values="metrics.test/acc")
    params = runs[runs["tags.kd.role"] == "student"].set_index("tags.kd.study_id")["metrics.model/params"]
    table = table.dropna(subset=[c for c in ("teacher", "baseline", "student") if c in table])
    if not {"teacher", "baseline", "student"} <= set(table.columns):
        return pd.DataFrame(columns=COLUMNS)
    out = pd.DataFrame({
        "dataset": studies.loc[table.index, "dataset"], "params": params.reindex(table.index),
        "baseline": table["baseline"], "student": table["student"],
        "ratio": table["teacher"] / table["baseline"].clip(lower=1e-9),
        "gain": 100 * (table["student"] - table["baseline"]), "label": studies.loc[table.index, "label"]})
    out = out.dropna()
    return out.assign(provoked=studies.loc[out.index, "name"].map(lessons.is_provoked).astype(bool))


def zone_of(ratio: float) -> tuple[str, str]:
    """The zone a performance ratio falls in, and what the survey recommends there."""
    return next((where, advice) for low, high, where, advice in ZONES if low <= ratio < high)


def gap_table(points: pd.DataFrame) -> pd.DataFrame:
    """The chart's points as rows of text, in order of the gap: each study's numbers, zone and recommendation."""
    rows = points.sort_values(["ratio", "label"])
    zones = rows["ratio"].map(zone_of)
    table = pd.DataFrame({
        "study": rows["label"], "teacher / baseline": rows["ratio"], "baseline": rows["baseline"],
        "distilled": rows["student"], "gain": (rows["gain"] / 100).map(numbers.points),
        "zone": zones.str[0], "the survey recommends": zones.str[1],
        "provoked failure": rows["provoked"].map({True: "yes", False: ""})})
    return numbers.as_percent(table, ["baseline", "distilled"]).reset_index(drop=True)


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
    st.plotly_chart(lesson_charts.gap_zones(points, [(low, high, f"{where}\n{advice}")
                                                     for low, high, where, advice in ZONES]), key="learn-gap-zones")
    st.caption(gap_caption(points))
    st.dataframe(gap_table(points), hide_index=True, width="stretch", column_config={
        "teacher / baseline": numbers.ratio_column("teacher / baseline"),
        "baseline": numbers.percent_column("baseline (alone)"), "distilled": numbers.percent_column("distilled"),
        "gain": st.column_config.TextColumn("gain (distilled − baseline)")})


def gap_caption(points: pd.DataFrame) -> str:
    """How many studies the chart holds, which are marked apart and which sit at its edge, and why."""
    low, high = lesson_charts.gain_range(points)
    off = ~points["gain"].between(low, high)
    provoked = int(points["provoked"].sum())
    parts = [f"{numbers.count(len(points))} studies, one point each (the table below lists them)."]
    if provoked:
        parts.append(f"{numbers.count(provoked)} were provoked to fail on purpose (Learn → Failure modes): drawn as "
                     "grey crosses, since their loss is the failure they show, not the gap.")
    if off.any():
        parts.append(f"{numbers.count(off.sum())} lie far outside the others' spread and sit at the chart's edge "
                     "with their gain, so that the rest stays readable.")
    return " ".join(parts)


render()
