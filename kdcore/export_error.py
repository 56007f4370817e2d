"""The error of an export: input that cannot be exported, said in one line."""

from __future__ import annotations


class ExportError(ValueError):
    """Input that cannot be exported, in one line naming the option and what is allowed."""


def one_line(err: BaseException) -> str:
    """An error's message on one line (its type's name when it has no message)."""
    return " ".join(str(err).split()) or type(err).__name__
