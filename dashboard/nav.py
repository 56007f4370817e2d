"""The dashboard's pages as ``st.Page`` objects, so pages can link to and switch to each other."""

from __future__ import annotations

import streamlit as st
from streamlit.navigation.page import StreamlitPage

LEARN = ("learn_temperature", "learn_capacity", "learn_tree", "learn_failures", "learn_gates")


def pages() -> dict[str, StreamlitPage]:
    """Every page by name. Page scripts live in ``views/``, relative to ``app.py``; the default page is
    Studies, or the first Learn page in workshop mode."""
    learn_first = workshop()
    return {
        "studies": st.Page("views/studies.py", title="Studies", icon=":material/table_view:",
                           default=not learn_first),
        "advisor": st.Page("views/advisor.py", title="Advisor", icon=":material/alt_route:"),
        "launch": st.Page("views/launch.py", title="Launch", icon=":material/rocket_launch:"),
        "compare": st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:"),
        "study": st.Page("views/study.py", title="Study detail", icon=":material/query_stats:"),
        "sweep": st.Page("views/sweep.py", title="Sweep", icon=":material/grid_on:"),
        "learn_temperature": st.Page("views/learn_soft_labels.py", title="Temperature", icon=":material/thermostat:",
                                     url_path="learn_temperature", default=learn_first),
        "learn_capacity": st.Page("views/learn_gap.py", title="Capacity gap", icon=":material/straighten:",
                                  url_path="learn_capacity"),
        "learn_tree": st.Page("views/learn_tree_walk.py", title="Decision tree", icon=":material/account_tree:",
                              url_path="learn_tree"),
        "learn_failures": st.Page("views/learn_failure_modes.py", title="Failure modes", icon=":material/warning:",
                                  url_path="learn_failures"),
        "learn_gates": st.Page("views/learn_quality_gates.py", title="Quality gates", icon=":material/checklist:",
                               url_path="learn_gates"),
    }


def sections() -> dict[str, list[StreamlitPage]]:
    """The sidebar: Learn and Explore, Learn first in workshop mode."""
    every = pages()
    learn = [every[name] for name in LEARN]
    explore = [page for name, page in every.items() if name not in LEARN]
    return {"Learn": learn, "Explore": explore} if workshop() else {"Explore": explore, "Learn": learn}


def go(name: str) -> None:
    """Switch to another page (ends this run)."""
    st.switch_page(pages()[name])


def fill_launch(config: dict, source: str) -> None:
    """Hand a config to the Launch form, saying where it came from (shown above the form): a new form
    version, so every field takes the config's value."""
    st.session_state["launch_config"] = config
    st.session_state["launch_source"] = source
    st.session_state["form_version"] = st.session_state.get("form_version", 0) + 1


def link(name: str, label: str) -> None:
    page = pages()[name]
    st.page_link(page, label=label, icon=page.icon)


def workshop() -> bool:
    """True under ``kdx dashboard --workshop``: Learn first, advanced options hidden."""
    import os

    return os.environ.get("KDX_WORKSHOP") == "1"
