"""Your text: one UTF-8 file for causal language-model distillation (next-token prediction).

The file is tokenised (a Hugging Face tokenizer from ``data.tokenizer``, else its characters plus a pad id)
and cut into sequences of ``data.max_length + 1`` tokens; each gives the input ``x = seq[:-1]`` and the
next-token targets ``y = seq[1:]`` (padding, and characters unknown to the vocabulary, are not scored).
The sequences are split at random with ``data.split_seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdcore.data.sources import Inputs, assemble, check_fields, shift_name, source_fields, split_rows
from kdcore.data.splits import DatasetSplits
from kdcore.data.tokenize import Tokenizer, tokenizer_for
from kdcore.registry import register_dataset
from kdcore.targets import IGNORE


def read_text(path: str, field: str) -> str:
    file = Path(path).expanduser()
    if file.is_dir():
        raise ValueError(f"{field}: text reads one text file; {file.name} is a folder")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{field}: {file.name} is not UTF-8 text (byte {err.start})") from None


def token_ids(text: str, tok: Tokenizer) -> np.ndarray:
    """The ids of the whole text, tokenised line by line (line ends kept), as one int64 array."""
    lines = text.splitlines(keepends=True)
    return np.fromiter((i for ids in tok.encode(lines) for i in ids), dtype=np.int64)


def sequences(ids: np.ndarray, length: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-token targets, each (N, length), of consecutive pieces of ``length + 1`` ids; a last
    shorter piece is padded (its padding not scored)."""
    step = length + 1
    full = len(ids) // step
    pieces = [ids[:full * step].reshape(full, step)]
    if len(ids) - full * step >= 2:
        tail = np.full((1, step), pad, dtype=np.int64)
        tail[0, :len(ids) - full * step] = ids[full * step:]
        pieces.append(tail)
    seqs = np.concatenate(pieces)
    targets = seqs[:, 1:].copy()
    targets[targets == pad] = IGNORE
    return np.ascontiguousarray(seqs[:, :-1]), targets


def count(tokens: int, length: int) -> int:
    """Sequences of ``length + 1`` a text of ``tokens`` ids makes."""
    return tokens // (length + 1) + (tokens % (length + 1) >= 2)


def enough_sequences(n: int, cfg: Any, where: str, needed: int = 3) -> None:
    """A file that makes too few sequences (3 for train, val and test; 1 for a shifted file) is an error."""
    if n < needed:
        raise ValueError(f"data.max_length: {where} makes {n} sequence(s) of max_length + 1 = {cfg.max_length + 1} "
                         f"tokens; at least {needed} are needed: lower data.max_length or give more text")


@dataclass(frozen=True)
class Corpus:
    text: str
    shifted: str | None
    tokenizer: Tokenizer


def survey(cfg: Any) -> Corpus:
    """Read the file(s) and the tokenizer; with characters, also check that the text makes enough sequences."""
    where = Path(cfg.path).expanduser().name
    check_fields(cfg, "text", "text", where)
    shift_name(cfg, "text")
    text = read_text(cfg.path, "data.path")
    shifted = read_text(cfg.shifted_path, "data.shifted_path") if cfg.shifted_path else None
    tok = tokenizer_for(cfg, lambda: [text])
    if not cfg.tokenizer:  # one id per character: counted without tokenising
        enough_sequences(count(len(text), cfg.max_length), cfg, where)
        if shifted is not None:
            enough_sequences(count(len(shifted), cfg.max_length), cfg, Path(cfg.shifted_path).name, needed=1)
    return Corpus(text, shifted, tok)


def describe(cfg: Any) -> dict[str, Any]:
    """Sequence length and vocabulary of a text file (data.path)."""
    tok = survey(cfg).tokenizer
    return {"input_shape": (cfg.max_length,), "num_classes": tok.vocab_size, "modality": "text",
            "inputs": "tokens", "targets": "tokens", "classes": list(tok.vocab), "pad_id": tok.pad_id}


@register_dataset("text", source=True, describe=describe, modality="text", generated=False, inputs="tokens",
                  targets="tokens", fields=source_fields("max_length"))
def text(cfg: Any) -> DatasetSplits:
    """Your text file, for next-token prediction: sequences of data.max_length tokens (characters or a tokenizer)."""
    corpus = survey(cfg)
    tok, length = corpus.tokenizer, cfg.max_length

    def inputs(text: str) -> Inputs:
        x, y = sequences(token_ids(text, tok), length, tok.pad_id)
        return Inputs(len(x), (length,), np.dtype(np.int64), lambda rows: x[rows], y)

    main = inputs(corpus.text)
    enough_sequences(main.count, cfg, Path(cfg.path).name)
    rows = split_rows(None, main.count, None, cfg)
    shifted = inputs(corpus.shifted) if corpus.shifted is not None else None
    if shifted is not None:
        enough_sequences(shifted.count, cfg, Path(cfg.shifted_path).name, needed=1)
    return assemble("text", cfg, "text", main, rows, shifted, num_classes=tok.vocab_size, vocab=tok.vocab_size,
                    pad=tok.pad_id)
