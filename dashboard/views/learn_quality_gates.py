"""Learn: the ten quality gates, walked through on a real study with their numbers, over the study's seeds where
the store has them."""

from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard import data, lessons, notes, seed_intervals
from dashboard.numbers import MISSING
from dashboard.text import md
from kdcore.seed_stats import mean_interval

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


def seed_gates(uri: str, study_id: str) -> tuple[dict[str, list[dict]], str | None]:
    """Seed -> the gates of the study of that seed: the study's own and each finished seed sibling's, in seed
    order; and the problem, where the siblings could not be read."""
    found = data.seed_siblings(uri, (study_id,))
    siblings = found.value[found.value["of"] == study_id]
    if siblings.empty:
        return {"?": data.gates(uri, study_id).value}, found.problem
    pairs = sorted(zip(siblings["seed"], siblings["study_id"], strict=True), key=lambda p: _seed_order(p[0]))
    return {str(seed): data.gates(uri, other).value for seed, other in pairs}, found.problem


def _seed_order(seed: object) -> tuple[int, str]:
    return (int(seed), "") if isinstance(seed, str) and seed.isdigit() else (1 << 30, str(seed))


def number_over_seeds(values: list[float]) -> str:
    """One gate number over seeds, to three significant digits like the study's own: the mean and 95% t-interval
    (``0.963 [0.951, 0.975] · 3 seeds``), or the value where every seed has the same."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return MISSING
    if np.ptp(x) == 0:
        return f"{x[0]:.3g} on each of {x.size} seeds" if x.size > 1 else f"{x[0]:.3g} · {lessons.ONE_SEED}"
    estimate = mean_interval(x)
    low, high = estimate.mean - estimate.half_width, estimate.mean + estimate.half_width
    return f"{estimate.mean:.3g} [{low:.3g}, {high:.3g}] · {estimate.n} seeds"


def gate_numbers(gate: dict, over: dict[str, list[dict]]) -> str:
    """A gate's numbers as text: with several seeds each over the seeds that have it; with one, the study's value
    and that it has no interval."""
    if len(over) < 2:
        shown = ", ".join(f"{k} {v:.3g}" for k, v in gate["numbers"].items())
        return f"{shown} ({lessons.ONE_SEED})" if shown else ""
    same = [_gate(gates, gate["number"]) for gates in over.values()]
    return ", ".join(f"{key} {number_over_seeds([g['numbers'].get(key) for g in same if g])}"
                     for key in gate["numbers"])


def gate_statuses(gate: dict, over: dict[str, list[dict]]) -> str:
    """How a gate fared on each seed, e.g. ``passed on seeds 0, 2; failed on seed 1``."""
    by_status: dict[str, list[str]] = {}
    for seed, gates in over.items():
        found = _gate(gates, gate["number"])
        by_status.setdefault(found["status"] if found else "not evaluated", []).append(seed)
    return "; ".join(f"{status} on seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}"
                     for status, seeds in by_status.items())


def _gate(gates: list[dict], number: int) -> dict | None:
    return next((g for g in gates if g["number"] == number), None)


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
    over, problem = seed_gates(uri, study_id)
    if problem:
        notes.problem(studies.loc[study_id, "label"], problem, "Its numbers are this study's alone.")
    statuses = [g["status"] for g in gates]
    st.metric("Passed", f"{statuses.count('passed')} of {len(gates)}")
    if len(over) > 1:
        st.caption(f"Each gate's status is this study's; its numbers are the mean and 95% t-interval over the "
                   f"configuration's {len(over)} seeds in this store ({', '.join(over)}), and how the gate fared "
                   "on each.")
    else:
        st.caption(f"This configuration has one seed in this store: its numbers have no interval. Run it over "
                   f"several, e.g. {seed_intervals.SWEEP_HINT}, to see how much they move.")
    for gate in gates:
        with st.container(border=True):
            seeds = f" here; over the seeds, {gate_statuses(gate, over)}" if len(over) > 1 else ""
            st.markdown(f"{ICONS.get(gate['status'], '')} **Gate {gate['number']}: {md(gate['name'])}**: "
                        f"{md(gate['status'])}{seeds}")
            st.caption(WHY.get(gate["number"], ""))
            numbers = gate_numbers(gate, over)
            if numbers:
                st.markdown(f"Numbers: {md(numbers, 1000)}")
            if gate["reason"]:
                st.markdown(f"Why{' (this study)' if len(over) > 1 else ''}: {md(gate['reason'], 1000)}")


render()
