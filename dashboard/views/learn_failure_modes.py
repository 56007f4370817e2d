"""Learn: the five failure modes, each provoked in sample studies over three seeds and shown beside the same
studies with the fix its finding offers and, where that fix does not clear it, the survey's or the one that does."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data, lessons, notes
from dashboard.alerts import finding_card
from dashboard.lessons import FAILURE_MODES, SEEDS


def seed_table(uri: str, stems: dict[str, str]) -> pd.DataFrame:
    """One row per study stem (its heading), one column per seed: the finding codes that fired, or "clear", with
    the student's validation accuracy; and on how many seeds nothing fired (a fix that trades its
    finding for another has not cleared it)."""
    frame = lessons.finished_studies(uri).drop_duplicates("name").set_index("name")  # the newest of each name
    names = {(stem, seed): f"{stem} seed{seed}" for stem in stems.values() for seed in SEEDS}
    ids = tuple(frame.loc[[n for n in names.values() if n in frame.index], "study_id"])
    runs = data.runs(uri, ids)  # every role run of the table's studies, read once
    students = runs[runs["tags.kd.role"].eq("student")].set_index("tags.kd.study_id")["metrics.val/best_acc"] \
        if not runs.empty else pd.Series(dtype=float)
    rows = []
    for heading, stem in stems.items():
        row, clear = {"": heading}, 0
        for seed in SEEDS:
            name = names[(stem, seed)]
            if name not in frame.index:
                row[f"seed {seed}"] = "not loaded"
                continue
            study_id = frame.loc[name, "study_id"]
            codes = [f["code"] for f in data.findings(uri, study_id).value]
            clear += not codes
            accuracy = f" ({float(students[study_id]):.1%})" if study_id in students.index else ""
            row[f"seed {seed}"] = (", ".join(codes) or "clear") + accuracy
        row["no finding"] = f"{clear} of {len(SEEDS)}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("")


def study_side(uri: str, name: str, code: str | None) -> None:
    """A study's findings: each as Study detail shows it (``code`` first), or a note that none fired."""
    study = lessons.study_named(uri, name)
    if study is None:
        return
    st.markdown(f"*{name}*")
    findings = data.findings(uri, study["study_id"])
    notes.problem(name, findings.problem, "Open it in Study detail to diagnose it again.")
    runs = data.runs(uri, (study["study_id"],))
    if not findings.value and not findings.problem:
        st.success("No failure mode fired.", icon=":material/check_circle:")
    for finding in sorted(findings.value, key=lambda f: f["code"] != code):
        finding_card(uri, study, runs, finding)


def render() -> None:
    st.title("The five failure modes")
    st.caption("Each was provoked on purpose in sample studies over three seeds; beside them, the same studies with "
               "the fix the finding offers and, where it does not clear the finding, the survey's remedy or the "
               "change that does. The findings are this version's verdict on what the studies recorded (validation "
               "split, one root cause per study): a fix that does not clear its finding is a result too.")
    uri = data.store_uri()
    tabs = st.tabs([m.title for m in FAILURE_MODES.values()])
    for tab, (code, mode) in zip(tabs, FAILURE_MODES.items(), strict=True):
        with tab:
            st.markdown(mode.what)
            stems = {"Provoked": mode.provoked} | {fix.heading: fix.stem for fix in mode.fixes}
            st.dataframe(seed_table(uri, stems), width="stretch")
            st.caption("Findings per seed, with the student's validation accuracy. " + mode.why)
            fix = mode.fixes[0]
            if len(mode.fixes) > 1:
                headings = {f.heading: f for f in mode.fixes}
                fix = headings[st.radio("Seed 0 beside the provoked study, with", list(headings), horizontal=True,
                                        key=f"learn-fix-{code}")]
            left, right = st.columns(2)
            with left:
                st.subheader("Provoked")
                study_side(uri, f"{mode.provoked} seed0", code)
            with right:
                st.subheader("With the fix")
                study_side(uri, f"{fix.stem} seed0", code)


render()
