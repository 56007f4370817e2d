"""Tiny study configs shared by the tests."""

from __future__ import annotations

from kdcore.config import ExperimentConfig, load_config

TINY = [
    "data.name=digits", "teacher.name=mlp", "teacher.width=32", "teacher.depth=1",
    "student.name=mlp", "student.width=8", "student.depth=1", "train.epochs=1",
    "train.batch_size=64", "train.threads=1", "train.device=cpu",
]


def tiny_config(*overrides: str) -> ExperimentConfig:
    """A study that trains in well under a second: digits, two small MLPs, one epoch."""
    return load_config(None, [*TINY, *overrides])
