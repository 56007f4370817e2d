"""Learn: the decision tree walked through, one preset situation per mechanism, each opened in the Advisor."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import nav
from kdcore import advisor

PRESETS: dict[str, dict[str, Any]] = {
    "A proven teacher, a small gap (digits)": {
        "dataset": "digits", "teacher": {"model": "cnn2d", "size": "medium"},
        "student": {"model": "mlp", "size": "small"}},
    "A large gap (MNIST-1D: a large CNN, a tiny MLP)": {
        "dataset": "mnist1d", "teacher": {"model": "cnn1d", "size": "large"},
        "student": {"model": "mlp", "size": "tiny"}},
    "Several learners exploring a drifting domain": {
        "dataset": "mnist1d", "teacher": {"model": "cnn1d", "size": "small"},
        "student": {"model": "mlp", "size": "medium"}, "several_learners": True, "stable_domain": False},
    "No proven teacher": {
        "dataset": "mnist1d", "teacher": {"model": "mlp", "size": "medium"},
        "student": {"model": "mlp", "size": "medium"}, "proven_teacher": False},
    "An RGB teacher, a depth student": {
        "dataset": "rgbd_scenes", "teacher": {"model": "cnn2d", "size": "medium", "modality": "rgb"},
        "student": {"model": "cnn2d", "size": "small", "modality": "depth"}},
    "A language model compressed in stages": {
        "dataset": "arithmetic", "teacher": {"model": "transformer", "size": "large"},
        "student": {"model": "transformer", "size": "small"}, "needs": ["decisions", "structure"]},
}


def advisor_state(preset: dict[str, Any]) -> dict[str, Any]:
    """The Advisor page's widget values for a preset (its ``adv.*`` keys)."""
    state = {"adv.dataset": preset["dataset"], "adv.needs": preset.get("needs", ["decisions"]),
             "adv.proven": preset.get("proven_teacher", True), "adv.peers": preset.get("several_learners", False),
             "adv.stable": preset.get("stable_domain", True)}
    for role in ("teacher", "student"):
        side = preset[role]
        state |= {f"adv.{role}.model": side["model"], f"adv.{role}.size": side["size"],
                  f"adv.{role}.modality": side.get("modality", "")}
    return state


@st.cache_data(show_spinner="Walking the tree for each situation…")
def advice_for(title: str) -> advisor.Advice:
    """The advice for a preset, computed once per server (sizing assistants builds models)."""
    return advisor.advise(PRESETS[title])


def render() -> None:
    st.title("The decision tree, walked through")
    st.caption("Four questions choose an approach: how wide the capacity gap is, what knowledge the task needs, "
               "how teacher and student should be scheduled, and how different their representations are. "
               "Each situation below lands on another mechanism; open it in the Advisor to see the path lit "
               "and change an answer.")
    for i, (title, preset) in enumerate(PRESETS.items()):
        advice = advice_for(title)
        with st.container(border=True):
            left, right = st.columns([3, 1], vertical_alignment="center")
            left.markdown(f"**{title}** → **{advice.mechanism}** distillation, method `{advice.method}`")
            left.markdown("\n".join(f"{p.step}. {p.question}: {p.rule} → *{p.outcome}*" for p in advice.path))
            if right.button("Open in the Advisor", key=f"learn-tree-{i}", icon=":material/alt_route:",
                            width="stretch"):
                for key, value in advisor_state(preset).items():
                    st.session_state[key] = value
                nav.go("advisor")


render()
