"""Store text on a page: shown as it was written, never as Markdown, a link, an image or HTML.

Study names, tags and the contents of artifacts come from a store anyone with access may write to,
so a name like ``![x](http://host/a.png)`` must not make the browser fetch an image or show a link.
Pages keep their own Markdown (bold, code spans) and pass every piece of store text through one of
these first: :func:`md` inside Markdown, :func:`chart` inside plotly text. (Streamlit reads its icon
codes even inside code spans, so store text is escaped there too, never fenced.)
"""

from __future__ import annotations

import html
import math
import re

LIMIT = 200  # characters of one piece of store text on a page; longer text ends in "…"
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\s]+")  # and bidi overrides
PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # ASCII punctuation: CommonMark lets each be escaped
LINK_MARKS = re.compile(r"([:@.])")  # where GFM finds bare addresses (http://, www., a@b.c) to link
WORD_JOINER = "\u2060"  # invisible; around those marks, no address is found, so no autolink is made


def one_line(value: object, limit: int = LIMIT) -> str:
    """A store value as text on one line (control characters and runs of white space become one space),
    cut to ``limit`` characters; empty for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = CONTROL.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def md(value: object, limit: int = LIMIT) -> str:
    """Store text to place inside Markdown: every punctuation mark escaped, so nothing is formatted, and a
    word joiner on each side of every ``:``, ``@`` and ``.``, so no address becomes a link."""
    joined = LINK_MARKS.sub(WORD_JOINER + r"\1" + WORD_JOINER, one_line(value, limit))
    return PUNCTUATION.sub(r"\\\1", joined)


def chart(value: object, limit: int = LIMIT) -> str:
    """Store text for plotly, whose labels read tags such as ``<a href>`` and ``<br>``: escaped to entities,
    which plotly shows as the characters they stand for."""
    return html.escape(one_line(value, limit), quote=False)


def parameters_saved(ratio: float | None) -> tuple[str, str]:
    """The parameter ratio (teacher over student) as a label and a value people read without inverting it."""
    if ratio is None or math.isnan(ratio):
        return "Parameters saved", "-"
    if ratio < 1:
        return "Student is larger", f"{1 / ratio:.1f}x the teacher"
    return "Parameters saved", f"{ratio:.1f}x fewer"
