"""Shared pieces of the Learn pages: the sample studies they teach with, and the button that runs one.

Every Learn page reads real studies from the store (a fresh install loads ``sample_runs/``) and finds
them by name; where one is missing it says how to get it instead of drawing nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import data, nav
from dashboard.text import md

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def finished_studies(uri: str) -> pd.DataFrame:
    """Finished studies of the store, indexed by study id (the Learn pages never show running ones)."""
    frame = data.studies(uri)
    return frame[frame["status"] == "FINISHED"].set_index("study_id", drop=False)


def study_named(uri: str, name: str) -> pd.Series | None:
    """The newest finished study called ``name``, or None after telling the reader how to load it."""
    frame = finished_studies(uri)
    found = frame[frame["name"] == name]
    if found.empty:
        st.info(f"The sample study *{name}* is not in this store. Load the samples with `kdx samples load` "
                "(a fresh `kdx dashboard` does it for an empty store).", icon=":material/info:")
        return None
    return found.iloc[0]


def role_runs(uri: str, study_id: str) -> dict[str, str]:
    """Role -> run id of one study."""
    runs = data.runs(uri, (study_id,))
    return runs.set_index("tags.kd.role")["run_id"].to_dict() if not runs.empty else {}


def run_it(uri: str, example: str, overrides: list[str], label: str, key: str) -> None:
    """A button that launches a real study (an example config with ``overrides``) in its own process."""
    if st.button(label, key=key, type="primary", icon=":material/play_arrow:"):
        from kdcore import launcher  # torch and the models: only when a study is launched
        from kdcore.config import load_config

        job = launcher.launch(load_config(EXAMPLES / example, overrides), tracking_uri=uri)
        st.success(f"Queued {md(job.name)}: it trains in its own process and appears in Studies when done.",
                   icon=":material/schedule:")
        nav.link("launch", "Watch it on Launch")
