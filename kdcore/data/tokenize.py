"""Text to token ids: a Hugging Face tokenizer (``data.tokenizer``: a saved folder or a hub id, through
AutoTokenizer) or, without one, the text's own characters.

Both give a vocabulary with a pad id. A tokenizer without a pad token gets one appended after its vocabulary;
the character vocabulary is the sorted characters of the text plus a pad, which also stands for any character
the text did not contain (in a shifted file).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

PAD_TOKEN = "<pad>"
BATCH = 1024  # texts per call of a Hugging Face tokenizer


@dataclass(frozen=True)
class Tokenizer:
    """Ids of texts and the vocabulary they index (``vocab[i]`` is token i)."""

    name: str
    vocab: tuple[str, ...]
    pad_id: int
    _encode: Callable[[list[str], bool], list[list[int]]]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, texts: list[str], special: bool = False) -> list[list[int]]:
        """Token ids of each text; ``special`` adds a Hugging Face tokenizer's begin/end tokens (classification)."""
        return [ids for start in range(0, len(texts), BATCH) for ids in self._encode(texts[start:start + BATCH],
                                                                                      special)]

    def rows(self, texts: list[str], length: int) -> np.ndarray:
        """(N, length) int64 ids of each text with its special tokens, cut or padded with the pad id."""
        out = np.full((len(texts), length), self.pad_id, dtype=np.int64)
        for i, ids in enumerate(self.encode(texts, special=True)):
            ids = ids[:length]
            out[i, :len(ids)] = ids
        return out


def characters(texts: Iterable[str]) -> Tokenizer:
    """One id per character of ``texts`` (sorted), then the pad id."""
    chars = sorted(set().union(*map(set, texts)))
    ids = {c: i for i, c in enumerate(chars)}
    pad = len(chars)

    def encode(batch: list[str], special: bool) -> list[list[int]]:
        return [[ids.get(c, pad) for c in text] for text in batch]

    return Tokenizer("characters", (*chars, PAD_TOKEN), pad, encode)


@functools.lru_cache(maxsize=4)
def hugging_face(name: str) -> Tokenizer:
    """The tokenizer saved in folder ``name`` or published as hub id ``name``; any failure is a one-line error."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ValueError("data.tokenizer: Hugging Face tokenizers need transformers (pip install "
                         "'kd-explorer[hf]'); or leave tokenizer empty for characters") from None
    try:
        tok = AutoTokenizer.from_pretrained(name)
    except Exception as err:  # OSError for a missing folder or id, ValueError for a broken one, ...
        detail = " ".join(str(err).split())[:200]
        raise ValueError(f"data.tokenizer: cannot load tokenizer {name!r} ({type(err).__name__}: {detail})") from None
    vocab = tuple(str(t) for t in tok.convert_ids_to_tokens(list(range(len(tok)))))
    pad = tok.pad_token_id
    if pad is None:
        vocab, pad = (*vocab, PAD_TOKEN), len(vocab)

    def encode(batch: list[str], special: bool) -> list[list[int]]:
        return tok(batch, add_special_tokens=special)["input_ids"]

    return Tokenizer(name, vocab, pad, encode)


def tokenizer_for(cfg: object, texts: Callable[[], Iterable[str]]) -> Tokenizer:
    """``data.tokenizer`` when set, else the characters of ``texts()`` (read only then)."""
    name = getattr(cfg, "tokenizer", None)
    return hugging_face(name) if name else characters(texts())
