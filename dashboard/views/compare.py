"""Compare: curves, ratios, entropy, calibration, compression and hyperparameters of selected studies."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data, nav, notes
from kdcore.tracker import role_key

MAX_PREDICTION_SERIES = 6


def prediction_series(uri: str, runs: pd.DataFrame) -> tuple[dict[str, tuple], str]:
    """(probs, labels) of the first few finished role runs (more series would not be legible), and their split:
    validation, which the findings read, unless a study was recorded without validation predictions."""
    finished = runs[runs["status"] == "FINISHED"].sort_values(
        ["tags.kd.study_id", "tags.kd.role"], key=lambda c: c.map(role_key) if c.name == "tags.kd.role" else c)
    found = {run["label"]: data.predictions(uri, run["run_id"])
             for _, run in finished.head(MAX_PREDICTION_SERIES).iterrows()}
    found = {label: arrays for label, arrays in found.items() if arrays}
    split = data.shared_split(list(found.values()))
    return {label: (arrays[f"{split}_probs"], arrays[f"{split}_labels"]) for label, arrays in found.items()}, split


def render() -> None:
    st.title("Compare")
    uri = data.store_uri()
    selection = tuple(st.session_state.get("selection", []))
    if not selection:
        st.info("Select two or more studies on the Studies page to compare them.")
        nav.link("studies", "Choose studies")
        return
    studies = data.studies(uri)
    chosen = studies[studies["study_id"].isin(selection)]
    runs = data.runs(uri, selection)
    if runs.empty:
        st.warning("The selected studies have no role runs yet.")
        return
    st.caption(f"{len(chosen)} studies, {len(runs)} runs")
    notes.studies(chosen)
    notes.runs(runs)

    metric_col, toggle_col = st.columns([3, 1])
    metric = metric_col.selectbox("Curve", data.CURVE_METRICS, index=1)
    aggregate = toggle_col.toggle("Aggregate seeds", value=True,
                                  help="Mean ± std over runs whose config differs only in train.seed")
    history = data.histories(uri, tuple(runs["run_id"]), tuple(data.CURVE_METRICS))
    st.plotly_chart(charts.curves(history, runs, metric, aggregate_seeds=aggregate), key="curves")

    group_col, _ = st.columns([1, 3])
    by = group_col.radio("Group students by", ["method", "knowledge"], horizontal=True, key="group_by",
                         format_func={"method": "method", "knowledge": "knowledge type"}.get)
    st.plotly_chart(charts.grouped_accuracy(chosen, by), key="grouped")

    left, right = st.columns(2)
    left.plotly_chart(charts.ratio_bars(chosen), key="ratios")
    right.plotly_chart(charts.compression_frontier(runs), key="frontier")

    series, split = prediction_series(uri, runs)
    left, right = st.columns(2)
    left.plotly_chart(charts.entropy_histograms({k: v[0] for k, v in series.items()}, split), key="entropy")
    right.plotly_chart(charts.reliability_diagram(series, split=split), key="reliability")

    students = runs[runs["tags.kd.role"] == "student"].merge(
        chosen[["study_id", "ratio_teacher", "ratio_baseline"]], left_on="tags.kd.study_id", right_on="study_id")
    st.plotly_chart(charts.parallel_coordinates(students), key="parallel")

    st.subheader("What differs")
    diff = charts.param_diff(students.set_index("label") if not students.empty else students)
    if diff.empty:
        st.caption("The selected studies share every parameter.")
    else:
        st.dataframe(diff, width="stretch")


render()
