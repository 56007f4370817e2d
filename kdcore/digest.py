"""Content digests of the user's files (checkpoints, data), so a cached teacher follows content, not paths."""

from __future__ import annotations

import hashlib
from pathlib import Path


def content_digest(path: Path | str) -> str:
    """SHA-256 of a file's bytes, or of a folder's files (relative paths and bytes, in sorted order)."""
    root = Path(path).expanduser()
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    for file in files:
        if root.is_dir():
            digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
