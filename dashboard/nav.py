"""The dashboard's pages as ``st.Page`` objects, so pages can link to and switch to each other."""

from __future__ import annotations

import streamlit as st
from streamlit.navigation.page import StreamlitPage


def pages() -> dict[str, StreamlitPage]:
    """Page scripts live in ``views/``, relative to ``app.py``."""
    return {
        "studies": st.Page("views/studies.py", title="Studies", icon=":material/table_view:", default=True),
        "advisor": st.Page("views/advisor.py", title="Advisor", icon=":material/alt_route:"),
        "launch": st.Page("views/launch.py", title="Launch", icon=":material/rocket_launch:"),
        "compare": st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:"),
        "study": st.Page("views/study.py", title="Study detail", icon=":material/query_stats:"),
    }


def go(name: str) -> None:
    """Switch to another page (ends this run)."""
    st.switch_page(pages()[name])


def link(name: str, label: str) -> None:
    page = pages()[name]
    st.page_link(page, label=label, icon=page.icon)


def workshop() -> bool:
    """True under ``kdx dashboard --workshop``: Learn first, advanced options hidden."""
    import os

    return os.environ.get("KDX_WORKSHOP") == "1"
