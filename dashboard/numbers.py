"""One format per kind of number, on every page, table and chart: accuracies and other fractions as
percentages with one decimal, ratios with two, parameter counts with thousands separators, and
differences of accuracy in points with their sign.

Text helpers (:func:`percent`, :func:`ratio`, :func:`count`, :func:`points`) return "-" for a missing
value. Tables use the ``*_column`` builders; a percentage column holds fractions and is scaled by
:func:`as_percent` first (Streamlit's own "percent" preset shows two decimals). Plotly axes and hovers
use the ``PLOTLY_*`` formats. Streamlit is imported only by the column builders, so chart modules stay
free of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import streamlit as st

PLOTLY_PERCENT = ".1%"
PLOTLY_RATIO = ".2f"
PLOTLY_COUNT = ","
PLOTLY_POINTS = "+.1f"
MISSING = "-"


def _missing(value: object) -> bool:
    try:
        return value is None or math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def percent(fraction: object) -> str:
    """0.8432 -> "84.3%"."""
    return MISSING if _missing(fraction) else f"{float(fraction):.1%}"


def ratio(value: object) -> str:
    """0.9712 -> "0.97"."""
    return MISSING if _missing(value) else f"{float(value):.2f}"


def count(value: object) -> str:
    """1234567 -> "1,234,567"."""
    return MISSING if _missing(value) else f"{round(float(value)):,}"


def points(difference: object) -> str:
    """A difference of two fractions in percentage points: 0.0123 -> "+1.2 pts"."""
    return MISSING if _missing(difference) else f"{100 * float(difference):+.1f} pts"


def as_percent(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """A copy of ``frame`` with fraction columns scaled to percents, for :func:`percent_column`."""
    frame = frame.copy()
    for column in columns:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce") * 100
    return frame


def percent_column(label: str, **options) -> st.column_config.NumberColumn:
    """A column of percents (scaled by :func:`as_percent`) shown with one decimal."""
    import streamlit as st

    return st.column_config.NumberColumn(label, format="%.1f%%", **options)


def ratio_column(label: str, **options) -> st.column_config.NumberColumn:
    import streamlit as st

    return st.column_config.NumberColumn(label, format="%.2f", **options)


def count_column(label: str, **options) -> st.column_config.NumberColumn:
    import streamlit as st

    return st.column_config.NumberColumn(label, format="localized", **options)
