"""Studies: every study in the store, filterable, with selection for Compare and Study detail.

The ticks in the table are the selection (:mod:`dashboard.selection`, kept in the session and the URL), so
the ticks, the caption and the buttons always agree, on this page and after coming back to it. The filters
are kept in the session too: a widget's state is dropped while its page is not drawn.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import data, nav, notes, numbers, selection
from dashboard.alerts import finding_card
from dashboard.text import md

NO_FINDINGS = "no findings"
MAX_ALERT_STUDIES = 5  # each card reads artifacts and draws charts: keep the page quick
SAMPLES = Path(__file__).resolve().parents[2] / "sample_runs"
SELECT = "select"
FILTERS = ("filter_dataset", "filter_method", "filter_status", "filter_text", "finding_filter", "min_gates")
KEPT_FILTERS = "studies_filters"  # a plain session key: it outlives the filter widgets
ACCURACIES = ("student_acc", "teacher_acc", "baseline_acc")
# Decision first: which study, how its student fares against teacher and baseline, how many failure modes and
# gates; at 1280 px these fit beside a study name of some 60 characters. The finding codes come later.
COLUMNS = {
    "label": "study",  # its width follows the names shown (table_columns)
    "ratio_teacher": numbers.ratio_column("÷ teacher", width=78, help="Student accuracy ÷ teacher accuracy"),
    "ratio_baseline": numbers.ratio_column("÷ baseline", width=84, help="Student accuracy ÷ baseline accuracy (the "
                                                                       "same student trained alone)"),
    "finding_count": st.column_config.NumberColumn("findings", format="%d", width=64,
                                                   help="How many failure modes were found (empty: not diagnosed)"),
    "gates_passed": st.column_config.NumberColumn("gates", format="%d / 10", width=60,
                                                  help="Quality gates passed, of 10 (empty: not diagnosed)"),
    "student_acc": numbers.percent_column("student acc", width=88),
    "teacher_acc": numbers.percent_column("teacher acc", width=88),
    "baseline_acc": numbers.percent_column("baseline acc", width=92),
    "finding_codes": st.column_config.ListColumn("finding codes", width=200),
    "dataset": "dataset", "teacher": "teacher", "student": "student", "method": "method", "mechanism": "mechanism",
    "status": "status",
    "start_time": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm"),
}
SEARCHED = [column for column in COLUMNS if column != "finding_count"]  # the codes are searched instead
CHARACTER_PX = 5.9  # the table's font (14 px Source Sans) on average, for a study column that fits its names


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


def restore_filters() -> None:
    """Put back the filters chosen when this page was last drawn (before their widgets are drawn)."""
    for key, value in st.session_state.get(KEPT_FILTERS, {}).items():
        if key not in st.session_state:
            st.session_state[key] = value


def keep_filters() -> None:
    st.session_state[KEPT_FILTERS] = {key: st.session_state[key] for key in FILTERS if key in st.session_state}


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


def filtered(frame: pd.DataFrame) -> pd.DataFrame:
    """The filter widgets, and the studies they let through."""
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
    least = gates.slider("Quality gates passed, at least", 0, 10, key="min_gates",
                         help="Studies not diagnosed yet have no count and are hidden above 0")
    keep_filters()
    view = by_findings(frame, findings)
    if least:
        view = view[pd.to_numeric(view["gates_passed"], errors="coerce") >= least]
    for column, chosen in (("dataset", datasets), ("method", methods), ("status", statuses)):
        if chosen:
            view = view[view[column].isin(chosen)]
    if text:
        haystack = view[[*SEARCHED, "study_id"]].astype(str).agg(" ".join, axis=1)  # every visible column
        view = view[haystack.str.contains(text, case=False, regex=False)]
    return view.reset_index(drop=True)


def only(code: str) -> None:
    """Show the studies with this one finding (a callback: it sets the filter before its widget is drawn)."""
    st.session_state["finding_filter"] = [code]


def finding_summary(view: pd.DataFrame) -> None:
    """How many shown studies have each finding; each is a button, as wide as its label, that filters the
    table to it."""
    counts = view["finding_codes"].explode().dropna().value_counts()
    if counts.empty:
        return
    with st.container(border=True):
        st.markdown(f"**Findings in the {len(view)} shown studies** (click one to show only its studies)")
        with st.container(horizontal=True):
            for code, n in counts.items():
                st.button(f"{md(code)} · {n}", key=f"summary-{code}", on_click=only, args=(code,),
                          icon=":material/warning:", help=f"{n} of the shown studies have {md(code)}")


def table_columns(view: pd.DataFrame) -> dict[str, object]:
    """The table's columns: the tick first, then the study, as wide as its longest shown name."""
    longest = int(view["label"].str.len().max()) if len(view) else 0
    study = st.column_config.TextColumn("study", pinned=True, width=max(160, round(CHARACTER_PX * longest) + 16))
    tick = st.column_config.CheckboxColumn("", pinned=True, width=32, help="Tick to select: Compare selected and "
                                                                           "Open study use the ticked studies")
    return {SELECT: tick, **COLUMNS, "label": study}


def finding_counts(view: pd.DataFrame) -> pd.Series:
    """How many findings each study has; missing where it was never diagnosed (no gates either)."""
    counts = view["finding_codes"].map(len).astype(float)
    return counts.where(counts.gt(0) | view["gates_passed"].notna())


def table(view: pd.DataFrame, chosen: list[str]) -> list[str]:
    """The shown studies, ticked where selected; returns the selection after the reader's ticks."""
    shown = view["study_id"].tolist()
    rows = numbers.as_percent(view.assign(finding_count=finding_counts(view))[list(COLUMNS)], ACCURACIES)
    rows.insert(0, SELECT, view["study_id"].isin(chosen))
    # A new key whenever the rows or the selection change, so the ticks drawn are exactly the selection
    # and edits made to one table never land on another's rows.
    key = "studies_table-" + hashlib.sha1(" ".join([*shown, "|", *chosen]).encode()).hexdigest()[:12]
    with st.container(key="studies_table"):
        edited = st.data_editor(rows, column_config=table_columns(view), disabled=list(COLUMNS), hide_index=True,
                                width="stretch", num_rows="fixed", key=key)
    return selection.ticked(chosen, shown, edited[SELECT].astype(bool).tolist())


def actions(view: pd.DataFrame, frame: pd.DataFrame, chosen: list[str]) -> None:
    """What the selection is, and what to do with it."""
    hidden = len(set(chosen) - set(view["study_id"]))
    st.caption(f"{len(view)} of {len(frame)} studies shown · {len(chosen)} selected"
               + (f", {hidden} of them hidden by the filters" if hidden else ""))
    with st.container(horizontal=True):
        if st.button("Compare selected", disabled=not chosen, type="primary", key="compare_selected"):
            st.switch_page(nav.pages()["compare"], query_params=selection.query(chosen))
        if st.button("Open study", disabled=len(chosen) != 1, key="open_study",
                     help="Opens the one selected study in Study detail"):
            st.session_state["study"] = chosen[0]
            st.switch_page(nav.pages()["study"], query_params={"id": chosen[0]})
        if st.button("Clear selection", disabled=not chosen, key="clear_selection"):
            selection.save([])
            st.rerun()


def render() -> None:
    st.title("Studies")
    uri = data.store_uri()
    frame = data.studies(uri)
    st.caption(f"Store: `{uri}`")
    if frame.empty:
        welcome(uri)
        return
    restore_filters()
    view = filtered(frame)
    finding_summary(view)
    chosen = selection.current(frame["study_id"])
    after = table(view, chosen)
    if after != chosen:
        selection.save(after)
        st.rerun()  # draw the table again under its new key, ticked from the selection
    actions(view, frame, chosen)
    notes.studies(view)
    selected_alerts(uri, frame, chosen)


def selected_alerts(uri: str, frame: pd.DataFrame, chosen: list[str]) -> None:
    """The findings of the selected studies, as on Study detail: evidence charts and one-click fixes."""
    flagged = frame[frame["study_id"].isin(chosen) & frame["finding_codes"].map(bool)].set_index("study_id")
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
