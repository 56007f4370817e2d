"""Learn: the five failure modes, each provoked in a sample study and shown beside the same study with a fix."""

from __future__ import annotations

import streamlit as st

from dashboard import data, lessons, notes
from dashboard.alerts import finding_card

MODES = {  # code -> (title, what it is, provoked study, fixed study)
    "capacity_mismatch": (
        "Capacity mismatch", "The teacher's outputs encode more than the student can represent: chasing them "
        "leaves the student below what it reaches alone.",
        "provoked capacity_mismatch seed0", "fixed capacity_mismatch - alpha 0.5 seed0"),
    "knowledge_confusion": (
        "Knowledge type confusion", "The student reproduces the teacher's outputs (the distillation loss falls) "
        "without the skill behind them: the wrong kind of knowledge was transferred.",
        "provoked knowledge_confusion seed0", "fixed knowledge_confusion - outputs + relations (multi) seed0"),
    "overconfidence": (
        "Teacher overconfidence amplification", "A near-certain teacher passes on its certainty without its "
        "accuracy: the student is more confident than it is right, also where it is wrong.",
        "provoked overconfidence seed0", "fixed overconfidence - T 16 and label smoothing 0.1 seed0"),
    "cross_modal_failure": (
        "Cross-modal alignment failure", "A student on another sensor learns nothing from a teacher whose "
        "samples it cannot match to its own: it stays at chance.",
        "provoked cross_modal_failure - rgb->depth unaligned seed0", "worked example 2 - rgb->depth aligned seed0"),
    "progressive_degradation": (
        "Progressive learning degradation", "Each stage of a chain loses some of what the stage above knew, "
        "until little is left for the student.", "provoked progressive_degradation seed0",
        "fixed progressive_degradation - skip to teacher seed0"),
}


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
    st.caption("Each was provoked on purpose in a sample study; beside it, the same study with a fix. The "
               "findings are this version's verdict on what the studies recorded, one root cause per study: a fix "
               "that does not clear its finding is a result too, so read its evidence.")
    uri = data.store_uri()
    for tab, (code, (_, what, provoked, fixed)) in zip(st.tabs([m[0] for m in MODES.values()]), MODES.items(),
                                                           strict=True):
        with tab:
            st.markdown(what)
            left, right = st.columns(2)
            with left:
                st.subheader("Provoked")
                study_side(uri, provoked, code)
            with right:
                st.subheader("With the fix")
                study_side(uri, fixed, code)


render()
