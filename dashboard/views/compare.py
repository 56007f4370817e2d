"""Compare: curves, ratios, entropy, calibration, compression and hyperparameters of the selected studies.

The studies come from the shared selection (:mod:`dashboard.selection`), so a link ``?studies=<id prefixes>``
opens a comparison. Every role of every study is drawn where it has predictions; under each prediction chart a
caption names the roles that have none, and why.

A selected study stands for its configuration (its config but for ``train.seed``): where the store holds the
configuration over several seeds, accuracies and ratios are means with a 95% interval over all of them, selected
or not, as the model card counts them, and the Difference panel compares two configurations over their seeds.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, data, nav, notes, numbers, selection
from dashboard import seed_intervals as seeds
from dashboard.text import md
from kdcore.seed_stats import compare
from kdcore.tracker import role_key

MAX_PREDICTION_SERIES = 24  # colour = role, dash and symbol = study, legend below: still told apart
WAITING = {"RUNNING": "still training, no predictions yet", "SCHEDULED": "not started yet"}
STOPPED = {"FAILED": "failed before it was evaluated", "KILLED": "stopped before it was evaluated"}
REUSED = "reused from another study, no predictions logged here"
OVER_SEEDS = ("A selected study stands for its configuration: every finished study in this store equal to it but for "
              "train.seed is one of its seeds, selected or not. Each number is the mean [95% t-interval] over the "
              "seeds. Student − baseline is paired by seed (the two share each seed's initialisation and batch "
              "order): a t-interval below 10 seeds, a bootstrap from 10; it helps or hurts when the interval "
              "leaves out 0.")
ONE_SEED = ("Each configuration here has one seed, so its numbers are single runs without an interval. For "
            f"intervals and verdicts, run a configuration over several seeds, e.g. {seeds.SWEEP_HINT}.")


class Missing(NamedTuple):
    """A role run the prediction charts do not draw, and why."""

    role: str
    study: str
    reason: str


class Predictions(NamedTuple):
    """What the entropy and reliability charts draw: (probs, labels) per ``"<study> · <role>"`` on ``split``,
    and the role runs left out."""

    series: dict[str, tuple[np.ndarray, np.ndarray]]
    split: str
    missing: list[Missing]


def missing_reason(run: pd.Series) -> str:
    """Why a role run has no predictions: still training, stopped, a teacher reused from another study (its
    predictions live there, if anywhere), or none logged."""
    status = str(run.get("status"))
    if status in WAITING:
        return WAITING[status]
    if status in STOPPED:
        return STOPPED[status]
    reused = run.get("tags.kd.reused_from")
    return REUSED if isinstance(reused, str) and reused else "no predictions logged"


def study_names(runs: pd.DataFrame) -> pd.Series:
    """Each run's study name, with the short study id added where two selected studies share a name."""
    ids, names = runs["tags.kd.study_id"].astype(str), runs["study_label"].astype(str)
    per_study = names.groupby(ids).first()
    shared = ids.isin(per_study[per_study.duplicated(keep=False)].index)
    return names.where(~shared, names + " (" + ids.str[:selection.SHORT] + ")")


def in_order(runs: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """Runs by study in selection order, then by role in chain order (teacher first)."""
    position = {study_id: i for i, study_id in enumerate(ids)}
    keys = [(position.get(s, len(ids)), role_key(r)) for s, r in zip(runs["tags.kd.study_id"], runs["tags.kd.role"],
                                                                     strict=True)]
    return runs.iloc[sorted(range(len(runs)), key=keys.__getitem__)]


def prediction_series(uri: str, runs: pd.DataFrame, ids: list[str]) -> Predictions:
    """(probs, labels) of every role run with predictions, up to MAX_PREDICTION_SERIES, on one split:
    validation, which the findings read, unless a study was recorded without validation predictions."""
    runs = in_order(runs.assign(_study=study_names(runs)), ids)
    found: dict[str, dict[str, np.ndarray]] = {}
    missing: list[Missing] = []
    for _, run in runs.iterrows():
        role, study = str(run["tags.kd.role"]), str(run["_study"])
        if len(found) >= MAX_PREDICTION_SERIES:
            missing.append(Missing(role, study, f"not drawn, the charts hold {MAX_PREDICTION_SERIES} series"))
            continue
        arrays = data.predictions(uri, run["run_id"])
        if arrays:
            found[study + charts.SEP + role] = arrays
        else:
            missing.append(Missing(role, study, missing_reason(run)))
    split = data.shared_split(list(found.values()))
    series = {label: (arrays[f"{split}_probs"], arrays[f"{split}_labels"]) for label, arrays in found.items()}
    return Predictions(series, split, missing)


def missing_caption(missing: list[Missing]) -> None:
    """Under a prediction chart: the roles it has no curve for, and why."""
    if missing:
        st.caption("No curve for " + "; ".join(f"{md(m.role)} of **{md(m.study)}**: {m.reason}" for m in missing)
                   + ".")


def back_to_studies(ids: list[str]) -> None:
    """A link to Studies that keeps this selection."""
    page = nav.pages()["studies"]
    st.page_link(page, label="Back to Studies", icon=":material/arrow_back:", query_params=selection.query(ids))


def predictions(uri: str, runs: pd.DataFrame, ids: list[str]) -> None:
    """Entropy and reliability, full width (their legends list every role run), each with what it leaves out."""
    found = prediction_series(uri, runs, ids)
    st.plotly_chart(charts.entropy_histograms({k: v[0] for k, v in found.series.items()}, found.split),
                    key="entropy")
    missing_caption(found.missing)
    st.plotly_chart(charts.reliability_diagram(found.series, split=found.split), key="reliability")
    missing_caption(found.missing)


def hyperparameters(runs: pd.DataFrame, chosen: pd.DataFrame) -> None:
    """The students' hyperparameters side by side (coloured by their ratio), and the table of what differs."""
    students = runs[runs["tags.kd.role"] == "student"].merge(
        chosen[["study_id", "ratio_teacher", "ratio_baseline"]], left_on="tags.kd.study_id", right_on="study_id")
    figure = charts.parallel_coordinates(students)
    if figure.data:
        st.plotly_chart(figure, key="parallel")
    else:
        st.caption(f"Hyperparameters side by side: {charts.blank_reason(figure)}.")
    st.subheader("What differs")
    diff = charts.param_diff(students.set_index("label") if not students.empty else students)
    if diff.empty:
        st.caption("The selected studies share every parameter.")
    else:
        st.dataframe(diff, width="stretch")


def over_seeds(uri: str, ids: list[str], studies: pd.DataFrame) -> pd.DataFrame:
    """The table of each configuration over its seeds (or a caption that there is one seed each); returns the
    seeds of every configuration (:func:`seed_intervals.members`), which the charts below draw from."""
    found = data.seed_siblings(uri, tuple(ids))
    table = seeds.members(ids, found.value, studies)
    st.subheader("Over seeds")
    if found.problem:
        st.warning(f"Numbers over seeds: {md(found.problem, 300)}.", icon=notes.ICON)
    if not seeds.several_seeds(table):
        st.caption(ONE_SEED)
        return table
    summary = seeds.summary_table(table)  # st.table reads Markdown: the store's text is escaped
    st.table(summary.assign(configuration=summary["configuration"].map(md), seeds=summary["seeds"].map(md))
             .set_index("configuration"))
    st.caption(OVER_SEEDS)
    return table


def difference(table: pd.DataFrame) -> None:
    """B − A student test accuracy for two configurations picked among the selected ones, over their seeds."""
    st.subheader("Difference")
    names = table.groupby("config", sort=True)["name"].first().to_dict()
    if len(names) < 2:
        st.caption("The selected studies are seeds of one configuration: select a study of another one to see a "
                   "difference.")
        return
    a_col, b_col = st.columns(2)
    a = a_col.selectbox("A", list(names), index=0, format_func=names.get, key="difference_a")
    b = b_col.selectbox("B", list(names), index=1, format_func=names.get, key="difference_b")
    if a == b:
        st.caption("Pick two different configurations.")
        return
    a_acc, b_acc = (seeds.accuracies(table[table["config"] == c]) for c in (a, b))
    if not a_acc or not b_acc:
        st.caption(f"**{md(names[a if not a_acc else b])}** has no student test accuracy yet.")
        return
    if len(a_acc) == 1 and len(b_acc) == 1:
        st.caption("A difference cannot be judged from one seed each: the spread between seeds is unknown. Run "
                   f"both configurations over several seeds, e.g. {seeds.SWEEP_HINT}, then compare again.")
        return
    found = compare(b_acc, a_acc)  # paired by seed when both have the same seeds, Welch otherwise
    st.markdown(f"Student test accuracy, **{md(names[b])}** − **{md(names[a])}**: {found.describe()}")
    st.caption(f"{seeds.how_compared(a_acc, b_acc, found)} Helps: B's student is more accurate than A's; hurts: "
               "less accurate.")


def accuracy_charts(chosen: pd.DataFrame, table: pd.DataFrame) -> None:
    """Student accuracy by group and the ratios: per selected study, or where a configuration has several
    seeds, over the seeds with the 95% interval as error bars."""
    pooled = seeds.several_seeds(table)
    group_col, _ = st.columns([1, 2])
    by = group_col.radio("Group students by", list(charts.GROUPINGS), horizontal=True, key="group_by",
                         format_func=charts.GROUPINGS.get)
    st.plotly_chart(charts.grouped_accuracy(table if pooled else chosen, by, interval=pooled), key="grouped")
    if pooled:
        st.caption(f"Bars: the mean over each group's studies, every seed of a configuration included "
                   f"({numbers.count(len(table))} studies); error bars: the 95% t-interval of that mean.")
    # full width: one bar pair per study (per configuration over its seeds), named in full
    st.plotly_chart(charts.ratio_bars(seeds.by_configuration(table) if pooled else chosen), key="ratios")


def render() -> None:
    st.title("Compare")
    uri = data.store_uri()
    studies = data.studies(uri)
    linked = st.query_params.get(selection.PARAM)
    ids = selection.current(studies["study_id"])
    if not ids:
        if linked:
            st.warning(f"No study in this store matches {md(linked)}.")
        st.info("Select two or more studies on the Studies page to compare them.")
        nav.link("studies", "Choose studies")
        return
    back_to_studies(ids)
    chosen = studies[studies["study_id"].isin(ids)]
    runs = data.runs(uri, tuple(ids))
    if runs.empty:
        st.warning("The selected studies have no role runs yet.")
        return
    st.caption(f"{numbers.count(len(chosen))} studies, {numbers.count(len(runs))} runs")
    notes.studies(chosen)
    notes.runs(runs)

    metric_col, toggle_col = st.columns([3, 1])
    metric = metric_col.selectbox("Curve", data.CURVE_METRICS, index=1)
    aggregate = toggle_col.toggle("Aggregate seeds", value=True,
                                  help="Mean ± std over runs whose config differs only in train.seed")
    history = data.histories(uri, tuple(runs["run_id"]), tuple(data.CURVE_METRICS))
    st.plotly_chart(charts.curves(history, runs, metric, aggregate_seeds=aggregate), key="curves")

    table = over_seeds(uri, ids, studies)
    accuracy_charts(chosen, table)
    st.plotly_chart(charts.compression_frontier(runs), key="frontier")
    difference(table)

    predictions(uri, runs, ids)
    hyperparameters(runs, chosen)


render()
