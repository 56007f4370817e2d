"""Whether a store holds any study, asked before the dashboard starts (to seed an empty store with the
samples). A local SQLite file is read directly, read-only, so a second start does not pay for importing
MLflow and the models; any other store is asked through MLflow."""

from __future__ import annotations

import sqlite3

from kdcore.local_store import SQLITE, read_only, sqlite_path
from kdcore.tracker import STUDY_ROLE

ANY_STUDY = ("SELECT 1 FROM tags JOIN runs ON runs.run_uuid = tags.run_uuid "
             "WHERE tags.key = 'kd.role' AND tags.value = ? AND runs.lifecycle_stage = 'active' LIMIT 1")


def is_empty_store(uri: str | None = None) -> bool:
    """True when the store holds no study (the moment to offer loading the samples)."""
    if uri and uri.startswith(SQLITE) and "?" not in uri:
        path = sqlite_path(uri)
        if path is None or not path.exists():
            return path is not None
        try:
            with read_only(path) as db:
                return db.execute(ANY_STUDY, (STUDY_ROLE,)).fetchone() is None
        except sqlite3.Error:  # not MLflow's schema (yet): MLflow creates or reads it below
            pass
    from kdcore.study_list import list_studies

    return list_studies(uri).empty
