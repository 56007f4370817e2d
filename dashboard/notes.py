"""Warnings about store data a page cannot use as it is: each names the study and what is missing or
broken, and says what the page shows instead; then the page goes on.

The readers of :mod:`dashboard.data` never raise on damaged data; they return what can be used and
mark the rest (a :class:`~dashboard.data.Loaded` problem, a stand-in role, infinite numbers). These
helpers turn those marks into one warning each.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.text import md

ICON = ":material/report:"


def problem(label: object, found: str | None, instead: str) -> None:
    """The warning for one study's unusable artifact: ``found`` (from a ``Loaded``) and what the page does
    ``instead``; nothing when there is no problem."""
    if found:
        st.warning(f"**{md(label)}**: {md(found, 400)}. {instead}", icon=ICON)


def studies(frame: pd.DataFrame) -> None:
    """A warning per study whose own metrics were infinite (shown as missing)."""
    if "infinite" in frame:
        for label, keys in zip(frame["label"], frame["infinite"], strict=True):
            if keys:
                st.warning(f"**{md(label)}**: infinite values are shown as missing: {md(', '.join(keys), 400)}.",
                           icon=ICON)


def runs(runs: pd.DataFrame) -> None:
    """A warning per study with role runs that lost their kd.role tag (shown under a stand-in role) or
    whose metrics were infinite (shown as missing)."""
    if runs.empty or "role_missing" not in runs:
        return
    for label, group in runs.groupby("study_label", sort=False):
        lost = group.loc[group["role_missing"], "tags.kd.role"].tolist()
        if lost:
            st.warning(f"**{md(label)}**: {len(lost)} run{'s have' if len(lost) > 1 else ' has'} no role (the kd.role "
                       f"tag), shown as {md(', '.join(lost))}.", icon=ICON)
        infinite = sorted({f"{role} {key}" for role, keys in zip(group["tags.kd.role"], group["infinite"], strict=True)
                           for key in keys})
        if infinite:
            st.warning(f"**{md(label)}**: infinite values are shown as missing: {md(', '.join(infinite), 400)}.",
                       icon=ICON)
