"""The selected studies: one list that Studies, Compare and their buttons share, kept in the session and in
the URL (``?studies=1a2b3c4d,5e6f7a8b``), so the selection survives moving between pages and a link to a
comparison can be shared."""

from __future__ import annotations

from collections.abc import Iterable

import streamlit as st

PARAM = "studies"
KEY = "selection"
SHORT = 8  # the id prefix the dashboard shows


def resolve(names: Iterable[str], known: Iterable[str]) -> list[str]:
    """Full study ids for ids or unique id prefixes, in the order given; unknown or ambiguous ones dropped."""
    known = list(known)
    found: list[str] = []
    for name in names:
        name = name.strip()
        matches = [study_id for study_id in known if name and study_id.startswith(name)]
        if len(matches) == 1 and matches[0] not in found:
            found.append(matches[0])
    return found


def current(known: Iterable[str]) -> list[str]:
    """The selected study ids among ``known``: a study list in the URL wins (a shared link), else the
    session's. Either way both hold the result afterwards."""
    known = list(known)
    raw = st.query_params.get(PARAM)
    chosen = resolve(raw.split(","), known) if raw else resolve(st.session_state.get(KEY, []), known)
    save(chosen)
    return chosen


def ticked(selected: list[str], shown: list[str], ticks: list[bool]) -> list[str]:
    """The selection after a table of ``shown`` studies came back with ``ticks``: a shown study is selected
    exactly when it is ticked (new ones join at the end), and a selected study that is not shown stays."""
    on = {study_id for study_id, tick in zip(shown, ticks, strict=True) if tick}
    visible = set(shown)
    kept = [study_id for study_id in selected if study_id not in visible or study_id in on]
    return kept + [study_id for study_id in shown if study_id in on and study_id not in kept]


def save(ids: list[str]) -> None:
    """Make ``ids`` the selection, in the session and in this page's URL."""
    st.session_state[KEY] = list(ids)
    if ids:
        st.query_params[PARAM] = ",".join(study_id[:SHORT] for study_id in ids)
    elif PARAM in st.query_params:
        del st.query_params[PARAM]


def query(ids: list[str]) -> dict[str, str]:
    """The URL query that carries ``ids`` to another page."""
    return {PARAM: ",".join(study_id[:SHORT] for study_id in ids)} if ids else {}
