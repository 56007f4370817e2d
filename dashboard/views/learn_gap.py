"""Learn: the capacity gap, from every finished study with a teacher, a baseline and a student, each configuration
over its seeds."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard import data, lesson_charts, lessons, numbers, seed_intervals
from kdcore import advisor
from kdcore.seed_stats import mean_interval, paired_difference

# The survey's capacity-gap table with the advisor's thresholds: (low, high, where, what it recommends).
ZONES = [(0.0, advisor.SIMILAR_PERFORMANCE, f"below {advisor.SIMILAR_PERFORMANCE:g}x", "learn together (online)"),
         (advisor.SIMILAR_PERFORMANCE, advisor.ONE_ASSISTANT_PERFORMANCE,
          f"{advisor.SIMILAR_PERFORMANCE:g}–{advisor.ONE_ASSISTANT_PERFORMANCE:g}x", "distil directly"),
         (advisor.ONE_ASSISTANT_PERFORMANCE, advisor.PROGRESSIVE_PERFORMANCE,
          f"{advisor.ONE_ASSISTANT_PERFORMANCE:g}–{advisor.PROGRESSIVE_PERFORMANCE:g}x", "add one teacher assistant"),
         (advisor.PROGRESSIVE_PERFORMANCE, math.inf, f"{advisor.PROGRESSIVE_PERFORMANCE:g}x and more",
          "two or more assistants (progressive)")]  # advisor.MIN_MULTI_STEP_ASSISTANTS
COLUMNS = ["dataset", "params", "teacher", "baseline", "student", "ratio", "gain", "label", "provoked"]


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
        "teacher": table["teacher"], "baseline": table["baseline"], "student": table["student"],
        "ratio": table["teacher"] / table["baseline"].clip(lower=1e-9),
        "gain": 100 * (table["student"] - table["baseline"]), "label": studies.loc[table.index, "label"]})
    out = out.dropna()
    return out.assign(provoked=studies.loc[out.index, "name"].map(lessons.is_provoked).astype(bool))


def gap_configurations(uri: str, points: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """One row per configuration among the studies of ``points`` (its seeds: studies equal but for the seed,
    newest first by ``order``, one per seed): the mean of each accuracy, the gap and the gain with the
    half-width or bounds of its 95% interval (NaN with one seed), ``seeds`` (how many) and the same numbers as
    text, as the table gives them. The gain is paired by seed: a study's student and baseline share its seed."""
    selected = [study_id for study_id in order if study_id in points.index]
    members = seed_intervals.members(selected, lessons.seed_configurations(uri, tuple(selected)),
                                     points.rename_axis("study_id").reset_index())
    rows = []
    for _, group in members.groupby("config", sort=False):
        n, name = len(group), group["name"].iloc[0]
        gain = paired_difference(group["student"].to_numpy(dtype=float), group["baseline"].to_numpy(dtype=float))
        row = {"config": name, "label": name if n == 1 else f"{name} ({n} seeds)", "seeds": n,
               "seed_list": seed_intervals.seed_list(group), "dataset": group["dataset"].iloc[0],
               "params": group["params"].mean(), "provoked": bool(group["provoked"].any()),
               "gain": 100 * gain.mean, "gain_low": 100 * gain.low if gain.low is not None else math.nan,
               "gain_high": 100 * gain.high if gain.high is not None else math.nan,
               "gain_text": lessons.difference_text(gain)}
        for column, percent in (("teacher", True), ("baseline", True), ("student", True), ("ratio", False)):
            estimate = mean_interval(group[column].to_numpy(dtype=float))
            row[column] = estimate.mean
            row[f"{column}_half"] = math.nan if estimate.half_width is None else estimate.half_width
            row[f"{column}_text"] = lessons.over_seeds(group[column], percent)
        rows.append(row)
    return pd.DataFrame(rows)


def zone_of(ratio: float) -> tuple[str, str]:
    """The zone a performance ratio falls in, and what the survey recommends there."""
    return next((where, advice) for low, high, where, advice in ZONES if low <= ratio < high)


def gap_table(configs: pd.DataFrame) -> pd.DataFrame:
    """The chart's points as rows of text, in order of the gap: each configuration's numbers over its seeds, the
    zone of its mean gap and what the survey recommends there."""
    rows = configs.sort_values(["ratio", "label"])
    zones = rows["ratio"].map(zone_of)
    return pd.DataFrame({
        "configuration": rows["config"], "seeds": rows["seed_list"], "teacher / baseline": rows["ratio_text"],
        "teacher": rows["teacher_text"], "baseline": rows["baseline_text"], "distilled": rows["student_text"],
        "gain": rows["gain_text"], "zone": zones.str[0], "the survey recommends": zones.str[1],
        "provoked failure": rows["provoked"].map({True: "yes", False: ""})}).reset_index(drop=True)


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
    configs = gap_configurations(uri, points, list(studies.index))
    st.plotly_chart(lesson_charts.size_against_accuracy(configs), key="learn-gap-size")
    st.plotly_chart(lesson_charts.gap_zones(configs, [(low, high, f"{where}\n{advice}")
                                                      for low, high, where, advice in ZONES]), key="learn-gap-zones")
    st.caption(gap_caption(configs, len(points)))
    st.dataframe(gap_table(configs), hide_index=True, width="stretch", column_config={
        "baseline": st.column_config.TextColumn("baseline (alone)"),
        "gain": st.column_config.TextColumn("gain (distilled − baseline)"),
        "zone": st.column_config.TextColumn("zone (of the mean gap)")})
    st.caption(f"Over each configuration's seeds: the mean and its 95% t-interval; the gain is paired by seed (a "
               f"study's student and baseline share its seed's initialisation and batch order), with its verdict. "
               f"A configuration with one seed has no interval: run it over several, e.g. {seed_intervals.SWEEP_HINT}.")


def gap_caption(configs: pd.DataFrame, studies: int) -> str:
    """How many configurations the chart holds and over how many studies, which have one seed, which are
    marked apart and which sit at its edge, and why."""
    low, high = lesson_charts.gain_range(configs)
    off = ~configs["gain"].between(low, high)
    provoked = int(configs["provoked"].sum())
    single = int((configs["seeds"] == 1).sum())
    parts = [f"{numbers.count(len(configs))} configurations from {numbers.count(studies)} studies, one point each: "
             "the mean over the configuration's seeds, with the 95% interval as error bars (the table below lists "
             "them)."]
    if single:
        parts.append(f"{numbers.count(single)} have one seed only: no interval.")
    if provoked:
        parts.append(f"{numbers.count(provoked)} were provoked to fail on purpose (Learn → Failure modes): drawn as "
                     "grey crosses, since their loss is the failure they show, not the gap.")
    if off.any():
        one = off.sum() == 1
        parts.append(f"{numbers.count(off.sum())} {'lies' if one else 'lie'} far outside the others' spread and "
                     f"{'sits' if one else 'sit'} at the chart's edge with {'its' if one else 'their'} mean gain, so "
                     "that the rest stays readable.")
    return " ".join(parts)


render()
