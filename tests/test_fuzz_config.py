"""Fuzzing ``kdx run`` with broken configs: each is refused with exit code 2 and one line, and logs nothing.

Every case starts from a tiny valid config and applies one to three mutations that no context can make
valid (a wrong type, a bool for a number, NaN, an out-of-range or huge value, an unknown key, garbage
structure, deep nesting, unicode, text MLflow cannot store), through the YAML file or through KEY=VALUE
overrides, sometimes after harmless changes (a deleted key, another method). Broken files (empty, not a
mapping, bad YAML, values PyYAML cannot build, not UTF-8) have their own fixed list. The cases are fixed
by a seed; more of them run with ``KDX_FUZZ_CASES=200 pytest tests/test_fuzz_config.py``, others with
``KDX_FUZZ_SEED=...``.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import types
from contextlib import closing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
import yaml

from kdcore.cli import main
from kdcore.config import ConfigError, ExperimentConfig, field_errors, validate

CASES = int(os.environ.get("KDX_FUZZ_CASES", "40"))
SEED = int(os.environ.get("KDX_FUZZ_SEED", "20240601"))

BASE: dict[str, Any] = {  # trains in well under a second, should a case ever turn out valid
    "data": {"name": "digits", "split_seed": 0},
    "teacher": {"name": "mlp", "width": 4, "depth": 1},
    "student": {"name": "mlp", "width": 4, "depth": 1},
    "distill": {"method": "kd", "temperature": 4.0, "alpha": 0.9},
    "train": {"epochs": 1, "batch_size": 64, "lr": 0.01, "threads": 1, "device": "cpu", "amp": False},
    "tracking": {"experiment": "fuzz"},
}
HARMLESS = {  # valid changes, made before the mutations (which they can never undo)
    "distill.temperature": 2, "distill.alpha": 0.5, "distill.method": "fitnet", "train.optimizer": "sgd",
    "train.momentum": 0, "train.seed": 3, "train.lr": "1e-3", "tracking.study_name": "ünïcødé ✓ study",
}
TEXT = ["", " ", "kd ", "MLP", "nope", "ünïcødé", "名前", "😀" * 3, "a\tb", "x" * 10_000, "null\x00byte",
        "'; DROP TABLE runs; --", "${HOME}", "../../etc/passwd"]
NUMBERS = [True, False, math.nan, math.inf, -math.inf, -1, -1.5, 10**30, -(10**30), 1e300, "abc", "1e999",
           "½", "", "-", [1], {"a": 1}]
STRUCTURES = [5, 2.5, True, "text", [1, "a", None], [{"no_such_key": 1}], [[[[]]]], {"β": [1, {"x": math.nan}]},
              {"nested": {"deeper": {"deepest": ["garbage", -math.inf]}}}]


def _leaves() -> dict[str, Any]:
    """Every config field by dotted path: its annotation, or "registry" when it names a registered thing."""
    out = {}
    for section, section_field in ExperimentConfig.model_fields.items():
        for name, field in section_field.annotation.model_fields.items():  # type: ignore[union-attr]
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            out[f"{section}.{name}"] = ("registry" if "registry" in extra else field.annotation)
    return out


LEAVES = _leaves()


def _bomb(rng: random.Random) -> Any:
    """Nested shared lists: a few lines of YAML (anchors and aliases), up to 10**9 elements when walked."""
    value: Any = ["lol"] * 10
    for _ in range(rng.randint(4, 8)):
        value = [value] * 10
    return value


def _deep(rng: random.Random) -> Any:
    """Lists and mappings nested 10 to 100 levels (deeper ones are the broken files' job)."""
    value: Any = rng.choice([1, "x", {}, []])
    for _ in range(rng.randint(10, 100)):
        value = [value] if rng.random() < 0.5 else {"k": value}
    return value


def bad_value(path: str, rng: random.Random) -> Any:
    """A value that ``path`` refuses whatever else the config says (never a default, never a valid one)."""
    kind = LEAVES[path]
    inner = [arg for arg in get_args(kind) if arg is not type(None)]
    if get_origin(kind) in (Union, types.UnionType) and len(inner) == 1:
        kind = inner[0]
    wrong_type = [[1, 2], {"a": 1}, _deep(rng), _bomb(rng)]
    sneaky = rng.random() < 0.5  # the values a lax parser would take without a word
    if kind in (int, float):
        if sneaky:
            return rng.choice([True, False, math.nan, math.inf, -math.inf, *([2.5, "7.5"] if kind is int else [])])
        return rng.choice(NUMBERS + wrong_type)
    if kind is bool:
        return rng.choice([1, 0] if sneaky else [2, 0.5, "maybe", "ja", "", [True], {"on": True}, *wrong_type])
    if kind == "registry" or get_origin(kind) is Literal:
        return rng.choice([*TEXT, 3, 4.5, False, *wrong_type])
    if get_origin(kind) is list or get_origin(kind) is dict:
        return rng.choice([*STRUCTURES, _deep(rng), _bomb(rng)])
    # free text: only the wrong type, or what MLflow cannot store
    limits = {"tracking.experiment": 501, "tracking.study_name": 251, "distill.rationale": 4001}
    too_long = ["ü" * limits[path]] if path in limits else []
    control = [] if path == "distill.rationale" else ["tab\there", "line\nbreak", "nul\x00", "bell\x07"]
    return rng.choice([7, 2.5, True, ["a"], {"a": "b"}, *too_long, *control, *wrong_type])


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    node = doc
    *parents, last = path.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def flow(value: Any) -> str:
    """``value`` as a one-line YAML override value."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).removesuffix("...\n").strip()


def unknown_key(rng: random.Random) -> Any:
    key = rng.choice(["temprature", "lr ", "Epochs", "ключ", "🔑", "a.b", 7, None, True, "x" * 300])
    assert key not in {path.split(".")[1] for path in LEAVES}
    return key


BROKEN_FILES = ["", "# nothing\n", "null\n", "[]\n", "- a\n- b\n", "42\n", "just text\n", "{\n", "a: b: c\n",
                "train: {lr: 2024-13-01}\n", "train: {seed: !!int x}\n", "train: {seed: !!timestamp x}\n",
                "train: {seed: 1" + "0" * 5000 + "}\n", "data: " + "[" * 1000 + "]" * 1000 + "\n",
                b"\xff\xfe\x00garbage", "data: &a [*a]\n", "distill: {params: &a {x: *a}}\n", "\ttabs: 1\n",
                "!!python/object:os.system {}\n", "? [a, b]\n: c\n"]


def make_case(case: int) -> tuple[str, list[str], dict[str, Any]]:
    """(config file contents, overrides, the mapping in the file) of one fuzz case."""
    rng = random.Random(f"{SEED}-{case}")
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    sections = list(doc)
    for _ in range(rng.randint(0, 2)):
        if rng.random() < 0.5:
            path, value = rng.choice(list(HARMLESS.items()))
            set_path(doc, path, value)
        else:
            section = rng.choice(sections)
            if doc[section]:
                doc[section].pop(rng.choice(list(doc[section])))
    overrides: list[str] = []
    for _ in range(rng.choices([1, 2, 3], weights=[6, 3, 1])[0]):  # one alone: nothing else to be refused for
        path = rng.choice([p for p in LEAVES if p != "tracking.uri"])
        mutation = rng.random()
        if mutation < 0.4:
            set_path(doc, path, bad_value(path, rng))
        elif mutation < 0.55:
            section = rng.choice(sections)
            if not isinstance(doc.get(section), dict):
                doc[section] = {}
            doc[section][unknown_key(rng)] = bad_value(path, rng)
        elif mutation < 0.65:
            doc[rng.choice([*sections, "extra", 1])] = rng.choice([5, "text", [1, 2], None, _deep(rng)])
        else:
            value = bad_value(path, rng)
            if isinstance(value, str) and rng.random() < 0.3:
                text = f'"{value[:20]}\\ud800"'  # a lone surrogate: valid YAML escape, not storable text
            elif rng.random() < 0.15:
                text = "[" * 1000 + "]" * 1000
            else:
                text = flow(value)
            overrides.append(rng.choice([f"{path}={text}", f"{path}.deeper=1", f"{path.replace('.', '.ß', 1)}=1",
                                         "no_equals_sign", "=5", f"{path}={text}"]))
    return yaml.safe_dump(doc, allow_unicode=rng.random() < 0.5, sort_keys=False), overrides, doc


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite store for every case (kdx opens a store named on its command line before anything else)."""
    return tmp_path_factory.mktemp("store") / "mlflow.db"


def experiments_and_runs(store: Path) -> tuple[list[str], int]:
    """The experiment names in the store and its number of runs (none yet when the file does not exist)."""
    if not store.exists():
        return [], 0
    with closing(sqlite3.connect(store)) as db:
        names = [name for (name,) in db.execute("SELECT name FROM experiments")]
        return names, db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def run_kdx(config: str | bytes, overrides: list[str], tmp_path: Path, store: Path, capsys: pytest.CaptureFixture,
            reproducer: str) -> None:
    """``kdx run`` in this process: exit code 2, one line on stderr, nothing on stdout, nothing logged."""
    path = tmp_path / "cfg.yaml"
    path.write_bytes(config if isinstance(config, bytes) else config.encode())
    try:
        code = main(["run", str(path), *overrides, "--tracking-uri", f"sqlite:///{store}", "--no-progress"])
    except BaseException as err:  # any escape is the failure this test looks for
        pytest.fail(f"kdx run raised {type(err).__name__}: {err}\n{reproducer}")
    out, err = capsys.readouterr()
    assert code == 2 and out == "", f"exit {code}, stdout {out[:500]!r}\n{reproducer}"
    assert err.startswith("kdx: error: ") and err.endswith("\n") and err.count("\n") == 1, f"{err!r}\n{reproducer}"
    names, runs = experiments_and_runs(store)
    assert runs == 0 and set(names) <= {"Default"}, f"the store holds {runs} runs in {names}\n{reproducer}"


@pytest.mark.parametrize("config", BROKEN_FILES)
def test_a_broken_file_is_one_line_and_exit_code_2(config: str | bytes, tmp_path, store, capsys) -> None:
    run_kdx(config, [], tmp_path, store, capsys, f"config: {config[:200]!r}")


@pytest.mark.parametrize("case", range(CASES))
def test_a_broken_config_is_one_line_and_exit_code_2(case: int, tmp_path, store, capsys) -> None:
    config, overrides, raw = make_case(case)
    reproducer = f"case {case} (seed {SEED}): overrides {[o[:200] for o in overrides]}, config:\n{config[:3000]!r}"
    run_kdx(config, overrides, tmp_path, store, capsys, reproducer)
    if not overrides:  # the same mapping, as the dashboard's form hands it over
        with pytest.raises(ConfigError):
            validate(raw)
        errors = field_errors(raw)
        assert errors and all("\n" not in f"{k}: {v}" for k, v in errors.items()), f"{errors}\n{reproducer}"
