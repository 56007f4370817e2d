"""Studies: every study in the store, filterable, with selection for Compare and Study detail."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import data, nav, notes
from dashboard.alerts import finding_card
from dashboard.text import md

NO_FINDINGS = "no findings"
MAX_ALERT_STUDIES = 5  # each card reads artifacts and draws charts: keep the page quick
SAMPLES = Path(__file__).resolve().parents[2] / "sample_runs"
COLUMNS = {
    "label": st.column_config.TextColumn("study", width="medium"),
    "status": "status", "dataset": "dataset", "teacher": "teacher", "student": "student", "method": "method",
    "mechanism": "mechanism",
    "teacher_acc": st.column_config.NumberColumn("teacher acc", format="percent"),
    "baseline_acc": st.column_config.NumberColumn("baseline acc", format="percent"),
    "student_acc": st.column_config.NumberColumn("student acc", format="percent"),
    "ratio_teacher": st.column_config.NumberColumn("student/teacher", format="%.3f"),
    "ratio_baseline": st.column_config.NumberColumn("student/baseline", format="%.3f"),
    "finding_codes": st.column_config.ListColumn("findings", width="medium"),
    "gates_passed": st.column_config.NumberColumn("gates passed", format="%d / 10"),
    "start_time": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm"),
}


def welcome(uri: str) -> None:
    st.info("No studies in this store yet. Load the example studies to explore a full dashboard, "
            "or start your own on the Launch page.")
    if st.button("Load the example studies", type="primary"):
        from kdcore.samples import load_samples

        with st.spinner("Loading example studies..."):
            count = load_samples(SAMPLES, uri)
        data.clear()
        st.toast(f"Loaded {count} example studies")
        st.rerun()
    nav.link("launch", "Launch a study")


def choices(frame: pd.DataFrame, column: str) -> list[str]:
    """The values of a column to filter on (a tag: any text), keeping a choice made earlier that is gone now."""
    values = {value for value in frame[column].dropna() if isinstance(value, str)}
    chosen = st.session_state.get(f"filter_{column}", [])
    return sorted(values | set(chosen))


def by_findings(frame: pd.DataFrame, chosen: list[str]) -> pd.DataFrame:
    """Studies with any of the chosen findings (or with none, for the "no findings" option)."""
    if not chosen:
        return frame
    keep = frame["finding_codes"].map(lambda codes: bool(set(codes) & set(chosen)) or (NO_FINDINGS in chosen
                                                                                       and not codes))
    return frame[keep]


def only(code: str) -> None:
    """Show the studies with this one finding (a callback: it sets the filter before its widget is drawn)."""
    st.session_state["finding_filter"] = [code]


def finding_summary(view: pd.DataFrame) -> None:
    """How many shown studies have each finding; each is a button that filters the table to it."""
    counts = view["finding_codes"].explode().dropna().value_counts()
    if counts.empty:
        return
    with st.container(border=True):
        st.markdown(f"**Findings in the {len(view)} shown studies** (click one to show only its studies)")
        for column, (code, n) in zip(st.columns(len(counts)), counts.items(), strict=True):
            column.button(f"{md(code)} in {n} stud{'y' if n == 1 else 'ies'}", key=f"summary-{code}", on_click=only,
                          args=(code,), icon=":material/warning:", width="stretch")


def render() -> None:
    st.title("Studies")
    uri = data.store_uri()
    frame = data.studies(uri)
    st.caption(f"Store: `{uri}`")
    if frame.empty:
        welcome(uri)
        return

    # Keyed: their options change as studies come and go, and a keyless widget with new options is a new
    # widget (its choice lost, redrawn under the pointer).
    left, middle, right, search = st.columns([1, 1, 1, 2])
    datasets = left.multiselect("Dataset", choices(frame, "dataset"), key="filter_dataset")
    methods = middle.multiselect("Method", choices(frame, "method"), key="filter_method")
    statuses = right.multiselect("Status", choices(frame, "status"), key="filter_status")
    text = search.text_input("Search", placeholder="any column: name, dataset, model, finding or id",
                             key="filter_text")
    codes, gates = st.columns([3, 2])
    options = [*sorted(set(frame["finding_codes"].explode().dropna())), NO_FINDINGS]
    if "finding_filter" in st.session_state:  # a code chosen earlier may be gone from the store
        st.session_state["finding_filter"] = [c for c in st.session_state["finding_filter"] if c in options]
    findings = codes.multiselect("Finding", options, key="finding_filter",
                                 help="Studies with any of the chosen failure modes (the kd.findings tag)")
    least = gates.slider("Quality gates passed, at least", 0, 10, 0, key="min_gates",
                         help="Studies not diagnosed yet have no count and are hidden above 0")
    view = by_findings(frame, findings)
    if least:
        view = view[pd.to_numeric(view["gates_passed"], errors="coerce") >= least]
    for column, chosen in (("dataset", datasets), ("method", methods), ("status", statuses)):
        if chosen:
            view = view[view[column].isin(chosen)]
    if text:
        haystack = view[[*COLUMNS, "study_id"]].astype(str).agg(" ".join, axis=1)  # every visible column
        view = view[haystack.str.contains(text, case=False, regex=False)]
    view = view.reset_index(drop=True)
    finding_summary(view)

    event = st.dataframe(view[list(COLUMNS)], column_config=COLUMNS, hide_index=True, width="stretch",
                         on_select="rerun", selection_mode="multi-row", key="studies_table")
    chosen = view.loc[list(event.selection.rows), "study_id"].tolist() if event.selection.rows else []
    if chosen:
        st.session_state["selection"] = chosen
    selection = st.session_state.get("selection", [])
    st.caption(f"{len(view)} of {len(frame)} studies shown · {len(selection)} selected")
    notes.studies(view)
    compare_col, detail_col, _ = st.columns([1, 1, 4])
    if compare_col.button("Compare selected", disabled=not selection, type="primary"):
        nav.go("compare")
    if detail_col.button("Open study", disabled=len(selection) != 1):
        st.session_state["study"] = selection[0]
        nav.go("study")
    selected_alerts(uri, frame, selection)


def selected_alerts(uri: str, frame: pd.DataFrame, selection: list[str]) -> None:
    """The findings of the selected studies, as on Study detail: evidence charts and one-click fixes."""
    flagged = frame[frame["study_id"].isin(selection) & frame["finding_codes"].map(bool)].set_index("study_id")
    if flagged.empty:
        return
    st.subheader("Findings of the selected studies")
    for study_id, study in flagged.head(MAX_ALERT_STUDIES).iterrows():
        st.markdown(f"**{md(study['label'])}** · `{study_id[:8]}`")
        runs = data.runs(uri, (study_id,))
        findings = data.findings(uri, study_id)
        notes.problem(study["label"], findings.problem, "Open it in Study detail to diagnose it again.")
        for finding in findings.value:
            finding_card(uri, study, runs, finding)
    if len(flagged) > MAX_ALERT_STUDIES:
        st.caption(f"Showing the first {MAX_ALERT_STUDIES} of {len(flagged)} selected studies with findings.")


render()
