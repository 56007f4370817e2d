"""Where a model of yours (``name: import``) is imported from: the environment, the working folder (as
``python -m`` finds modules) and the dashboard's data root, where Launch reads the user's files."""

from __future__ import annotations

import os
import sys


def add_import_roots() -> None:
    """Put the working folder and, when set, ``$KDX_DATA_ROOT`` on ``sys.path`` (once each)."""
    for folder in (os.getcwd(), os.environ.get("KDX_DATA_ROOT")):
        if folder and folder not in sys.path:
            sys.path.append(folder)
