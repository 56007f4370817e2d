"""Paths a browser may name: files and folders under the dashboard's data root, and nothing else.

``kdx dashboard --data-root DIR`` (default: the folder it was started in) sets the root. A typed path is
read relative to it; one that leaves it (``..``, an absolute path elsewhere, a link pointing out) is
refused, so a form cannot make the server read an arbitrary file. Paths only ever reach the study's
config, never a shell.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_VARIABLE = "KDX_DATA_ROOT"


class PathRefused(ValueError):
    """A typed path that is empty, missing, of the wrong kind or outside the data root (one line)."""


def data_root() -> Path:
    """The folder the dashboard reads the user's models and data from."""
    return Path(os.environ.get(ROOT_VARIABLE) or os.getcwd()).expanduser().resolve()


def under_root(typed: str, field: str, *, kind: str = "any", suffixes: tuple[str, ...] = ()) -> str:
    """The absolute path of ``typed`` (relative to the data root, or absolute inside it) when it exists, is a
    ``kind`` ("file", "folder" or "any") and ends with one of ``suffixes``; else :class:`PathRefused`
    naming ``field``."""
    text = typed.strip()
    root = data_root()
    if not text:
        raise PathRefused(f"{field}: give a path under {root}")
    if "\0" in text:
        raise PathRefused(f"{field}: a path cannot hold a NUL character")
    path = (root / Path(text).expanduser()).resolve()  # an absolute path replaces the root; links resolve
    if not path.is_relative_to(root):
        raise PathRefused(f"{field}: {text!r} is outside the data root {root}; allowed: paths under it")
    if not path.exists():
        raise PathRefused(f"{field}: nothing at {text!r} under {root}")
    if (kind == "file" and not path.is_file()) or (kind == "folder" and not path.is_dir()):
        raise PathRefused(f"{field}: {text!r} is not a {kind}")
    if suffixes and not path.name.lower().endswith(suffixes):
        raise PathRefused(f"{field}: {text!r} is not one of {', '.join(suffixes)}")
    return str(path)


def shown(path: str | None) -> str:
    """A stored absolute path as the form shows it: relative to the data root when inside it."""
    if not path:
        return ""
    resolved = Path(path)
    root = data_root()
    return str(resolved.relative_to(root)) if resolved.is_absolute() and resolved.is_relative_to(root) else path
