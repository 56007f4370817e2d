"""Learn: the five failure modes, each provoked in sample studies over three seeds and shown beside the same
studies with the fix its finding offers and, where that fix does not clear it, the survey's or the one that does."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data, lessons, notes, numbers
from dashboard.alerts import finding_card
from dashboard.lessons import FAILURE_MODES, SEEDS

ACCURACY = "metrics.val/best_acc"  # the findings judge validation numbers; the tables show the same


def sample_studies(uri: str, stems: dict[str, str]) -> dict[tuple[str, int], str]:
    """(heading, seed) -> study id of the newest finished study of each stem and seed that is in the store."""
    frame = lessons.finished_studies(uri).drop_duplicates("name").set_index("name")  # the newest of each name
    return {(heading, seed): str(frame.loc[f"{stem} seed{seed}", "study_id"]) for heading, stem in stems.items()
            for seed in SEEDS if f"{stem} seed{seed}" in frame.index}


def role_accuracies(uri: str, study_ids: tuple[str, ...]) -> pd.DataFrame:
    """Validation accuracy of every role of the given studies: one row per study, one column per role."""
    runs = data.runs(uri, study_ids)  # every role run of the table's studies, read once
    if runs.empty or ACCURACY not in runs:
        return pd.DataFrame(index=pd.Index(study_ids))
    return runs.pivot_table(index="tags.kd.study_id", columns="tags.kd.role", values=ACCURACY, aggfunc="first")


def seed_table(uri: str, stems: dict[str, str]) -> pd.DataFrame:
    """One row per study stem (its heading), one column per seed: the finding codes that fired, or "clear", with
    the student's validation accuracy; and on how many seeds nothing fired (a fix that trades its
    finding for another has not cleared it)."""
    found = sample_studies(uri, stems)
    students = role_accuracies(uri, tuple(found.values())).get("student", pd.Series(dtype=float))
    rows = []
    for heading in stems:
        row, clear = {"": heading}, 0
        for seed in SEEDS:
            study_id = found.get((heading, seed))
            if study_id is None:
                row[f"seed {seed}"] = "not loaded"
                continue
            codes = [f["code"] for f in data.findings(uri, study_id).value]
            clear += not codes
            accuracy = f" ({numbers.percent(students[study_id])})" if pd.notna(students.get(study_id)) else ""
            row[f"seed {seed}"] = (", ".join(codes) or "clear") + accuracy
        row["no finding"] = f"{clear} of {len(SEEDS)}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("")


def accuracy_table(uri: str, stems: dict[str, str]) -> pd.DataFrame:
    """The key accuracies behind each verdict as text: one row per study and seed, with the teacher's, the baseline's
    (the same student trained alone) and the distilled student's validation accuracy, and the difference."""
    found = sample_studies(uri, stems)
    roles = role_accuracies(uri, tuple(found.values()))
    rows = []
    for (heading, seed), study_id in found.items():
        accuracy = roles.loc[study_id] if study_id in roles.index else pd.Series(dtype=float)
        student, baseline = accuracy.get("student"), accuracy.get("baseline")
        rows.append({"study": heading, "seed": seed, "teacher": accuracy.get("teacher"), "baseline": baseline,
                     "student": student, "student − baseline": numbers.points(
                         None if student is None or baseline is None else student - baseline)})
    return numbers.as_percent(pd.DataFrame(rows, columns=["study", "seed", "teacher", "baseline", "student",
                                                          "student − baseline"]), ["teacher", "baseline", "student"])


ACCURACY_COLUMNS = {"teacher": numbers.percent_column("teacher"), "baseline": numbers.percent_column("baseline"),
                    "student": numbers.percent_column("student")}


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
            st.dataframe(accuracy_table(uri, stems), hide_index=True, width="stretch", column_config=ACCURACY_COLUMNS)
            st.caption("Validation accuracy of each study's roles, as the findings read them; the baseline is the "
                       "same student trained alone.")
            fix = mode.fixes[0]
            if len(mode.fixes) > 1:
                headings = {f.heading: f for f in mode.fixes}
                fix = headings[st.radio("Seed 0 of the provoked study, then with", list(headings), horizontal=True,
                                        key=f"learn-fix-{code}")]
            st.subheader("Provoked, seed 0")  # one above the other: each card and its charts get the page's width
            study_side(uri, f"{mode.provoked} seed0", code)
            st.subheader("With the fix, seed 0")
            study_side(uri, f"{fix.stem} seed0", code)


render()
