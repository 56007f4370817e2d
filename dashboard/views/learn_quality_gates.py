"""Learn: the ten quality gates, walked through on a real study with their numbers."""

from __future__ import annotations

import streamlit as st

from dashboard import data, lessons, notes
from dashboard.text import md

DEFAULT = "worked example 2 - rgb->depth aligned seed0"
WHY = {
    1: "A student must keep most of the teacher's accuracy, or clearly beat itself trained alone; otherwise "
       "distillation did not pay.",
    2: "Numbers come from a split never used to choose the model, so they say how it will do on new data.",
    3: "A wide gap needs assistants, and each stage of a chain may bridge only so much.",
    4: "What is transferred must be something both architectures can express.",
    5: "Deployed models meet data unlike their training data; the student is measured on a shifted split.",
    6: "None of the five failure modes fired.",
    7: "Compression is the point: parameters, latency and memory of teacher and student are on record.",
    8: "Someone can say why this mechanism: a recorded rationale, or the advisor agreeing on the measured gap.",
    9: "Where the teacher is wrong or unsure, the student should not copy its mistakes.",
    10: "On the classes the teacher masters, the student should keep what the teacher knew.",
}
ICONS = {"passed": ":material/check_circle:", "failed": ":material/cancel:", "not measurable": ":material/help:"}


def render() -> None:
    st.title("The quality gates")
    st.caption("Ten checks before a distilled student ships, computed from what the study logged.")
    uri = data.store_uri()
    studies = lessons.finished_studies(uri)
    if studies.empty:
        lessons.study_named(uri, DEFAULT)
        return
    ids = list(studies.index)
    default = next((i for i in ids if studies.loc[i, "name"] == DEFAULT), ids[0])
    study_id = st.selectbox("Study", ids, index=ids.index(default), format_func=lambda i: studies.loc[i, "label"],
                            key="learn-gates-study")
    loaded = data.gates(uri, study_id)
    notes.problem(studies.loc[study_id, "label"], loaded.problem, "Open it in Study detail to diagnose it again.")
    gates = loaded.value
    if not gates:
        st.info("This study has no gates yet: open it in Study detail and diagnose it.")
        return
    statuses = [g["status"] for g in gates]
    st.metric("Passed", f"{statuses.count('passed')} of {len(gates)}")
    for gate in gates:
        with st.container(border=True):
            st.markdown(f"{ICONS.get(gate['status'], '')} **Gate {gate['number']}: {md(gate['name'])}**: "
                        f"{md(gate['status'])}")
            st.caption(WHY.get(gate["number"], ""))
            numbers = ", ".join(f"{k} {v:.3g}" for k, v in gate["numbers"].items())
            if numbers:
                st.markdown(f"Numbers: {md(numbers, 1000)}")
            if gate["reason"]:
                st.markdown(f"Why: {md(gate['reason'], 1000)}")


render()
