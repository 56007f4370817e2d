"""Sweep files: grid, random and seeds expand into validated study configs; bad input is one line naming the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kdcore.sweep_spec import SweepError, configure, count, expand, load_sweep

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits_kd.yaml"


def write(folder: Path, text: str, name: str = "sweep.yaml") -> Path:
    """A sweep file in ``folder``; ``{base}`` in the text stands for the digits example."""
    path = folder / name
    path.write_text(textwrap.dedent(text).replace("{base}", str(DIGITS)))
    return path


def test_grid_is_the_product_in_order_with_labels_and_study_names(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, """
        base: {base}
        name: t x a
        grid:
          distill.temperature: [1, 2, 4]
          distill.alpha: [0.5, 0.9]
    """))
    points = expand(spec)
    assert count(spec) == len(points) == 6
    assert [p.id for p in points] == ["p00", "p01", "p02", "p03", "p04", "p05"]
    assert [(p.values["distill.temperature"], p.values["distill.alpha"]) for p in points] == [
        (1, 0.5), (1, 0.9), (2, 0.5), (2, 0.9), (4, 0.5), (4, 0.9)]
    assert points[3].label == "distill.temperature=2, distill.alpha=0.9 · seed 0"
    config = points[3].config
    assert (config.distill.temperature, config.distill.alpha, config.train.seed) == (2.0, 0.9, 0)
    assert config.tracking.study_name == "t x a: distill.temperature=2, distill.alpha=0.9 · seed 0"
    assert config.teacher.name == "cnn2d"  # the rest comes from the base


def test_every_point_is_repeated_per_seed_with_train_seed_set(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, """
        base: {base}
        seeds: [0, 1, 2]
        grid: {distill.temperature: [2, 8]}
    """))
    points = expand(spec)
    assert count(spec) == len(points) == 6
    assert [(p.id, p.seed) for p in points] == [("p00", 0), ("p00", 1), ("p00", 2), ("p01", 0), ("p01", 1), ("p01", 2)]
    assert all(p.config.train.seed == p.seed for p in points)
    assert len({p.key for p in points}) == len({p.config.tracking.study_name for p in points}) == 6
    assert points[4].label.endswith("· seed 1")
    assert spec.name == "sweep"  # the file's name when the sweep names none


RANDOM = """
    base: {base}
    random:
      samples: 40
      seed: SEED
      axes:
        train.lr: {low: 0.0001, high: 0.1, log: true}
        distill.alpha: {low: 0.1, high: 0.9}
        teacher.depth: {low: 1, high: 4, integer: true}
        student.width: {choices: [8, 16, 32]}
"""


def test_random_draw_is_reproducible_and_respects_its_axes(tmp_path: Path) -> None:
    draw = [p.values for p in expand(load_sweep(write(tmp_path, RANDOM.replace("SEED", "3"))))]
    assert draw == [p.values for p in expand(load_sweep(write(tmp_path, RANDOM.replace("SEED", "3"))))]
    assert draw != [p.values for p in expand(load_sweep(write(tmp_path, RANDOM.replace("SEED", "4"))))]
    assert len(draw) == 40
    lrs = [v["train.lr"] for v in draw]
    assert all(1e-4 <= lr <= 0.1 for lr in lrs)
    assert sum(lr < 1e-2 for lr in lrs) >= 20  # log-uniform: two decades of three below 0.01 (uniform: 9%)
    assert all(0.1 <= v["distill.alpha"] <= 0.9 for v in draw)
    depths = [v["teacher.depth"] for v in draw]
    assert all(type(d) is int and 1 <= d <= 4 for d in depths) and set(depths) == {1, 2, 3, 4}
    assert {v["student.width"] for v in draw} == {8, 16, 32}


def test_grid_and_random_points_are_concatenated(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, """
        base: {base}
        seeds: [0, 1]
        grid: {distill.temperature: [2, 4]}
        random:
          samples: 3
          axes: {distill.alpha: {low: 0.2, high: 0.8}}
    """))
    points = expand(spec)
    assert count(spec) == len(points) == 10
    assert [p.values for p in points[:4:2]] == [{"distill.temperature": 2}, {"distill.temperature": 4}]
    assert all(set(p.values) == {"distill.alpha"} for p in points[4:])
    assert [p.id for p in points[4::2]] == ["p02", "p03", "p04"]


def test_command_line_overrides_go_on_top_of_the_files(tmp_path: Path) -> None:
    path = write(tmp_path, """
        base: {base}
        overrides: {train.epochs: 10, train.batch_size: 32}
        grid: {distill.temperature: [2]}
    """)
    config = expand(load_sweep(path, ["train.epochs=3", "distill.params={}"]))[0].config
    assert (config.train.epochs, config.train.batch_size, config.train.lr) == (3, 32, 0.003)
    assert expand(load_sweep(path))[0].config.train.epochs == 10


def test_a_relative_base_is_read_from_the_sweep_files_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "else" / "where").mkdir(parents=True)
    (tmp_path / "base.yaml").write_text("train:\n  epochs: 4\n")
    monkeypatch.chdir(tmp_path / "else" / "where")  # ../base.yaml from here is not the base
    spec = load_sweep(write(tmp_path / "sweeps", "base: ../base.yaml\ngrid: {distill.alpha: [0.5]}\n"))
    assert spec.base == tmp_path / "base.yaml"
    assert expand(spec)[0].config.train.epochs == 4


def test_max_studies_is_the_limit(tmp_path: Path) -> None:
    text = "base: {base}\nseeds: [0, 1, 2]\nmax_studies: 24\ngrid: {distill.temperature: [1, 2, 4, 8], " \
           "distill.alpha: [0.5, 0.9]}\n"
    assert count(load_sweep(write(tmp_path, text))) == 24
    with pytest.raises(SweepError, match=r"^sweep: 30 studies, more than max_studies 24; raise max_studies"):
        load_sweep(write(tmp_path, text.replace("[0.5, 0.9]", "[0.5, 0.7, 0.9]").replace("[0, 1, 2]", "[0, 1]")
                         .replace("[1, 2, 4, 8]", "[1, 2, 4, 8, 16]")))


def test_the_default_limit_is_200_studies(tmp_path: Path) -> None:
    path = write(tmp_path, "base: {base}\nseeds: [0, 1, 2]\ngrid: {distill.temperature: [1, 2, 3, 4, 5, 6, 7, 8], "
                           "distill.alpha: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}\n")
    with pytest.raises(SweepError) as err:
        load_sweep(path)
    assert str(err.value) == "sweep: 240 studies, more than max_studies 200; raise max_studies or trim an axis"


def test_a_search_is_validated_and_counted_but_not_expanded(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, """
        base: {base}
        seeds: [0, 1]
        search:
          trials: 20
          objective: val/acc
          prune: true
          axes: {distill.temperature: {low: 1, high: 8, log: true}}
    """))
    assert (count(spec), spec.search.direction, spec.search.kind) == (40, "maximize", "optuna")
    with pytest.raises(SweepError, match=r"^search: "):
        expand(spec)
    assert configure(spec, {"distill.temperature": 3.5}, 1).distill.temperature == 3.5


def test_the_example_sweep_expands_to_24_studies() -> None:
    spec = load_sweep(ROOT / "examples" / "sweep_temperature.yaml")
    points = expand(spec)
    assert count(spec) == len(points) == 24
    assert len({p.config.tracking.study_name for p in points}) == 24
    assert {p.config.train.seed for p in points} == {0, 1, 2}


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("sweep_*.yaml")), ids=lambda p: p.stem)
def test_every_example_sweep_expands_into_valid_studies_within_its_maximum(path: Path) -> None:
    spec = load_sweep(path)
    points = expand(spec)
    assert count(spec) == len(points) <= spec.max_studies
    assert len({p.config.tracking.study_name for p in points}) == len(points)  # every study named apart


B = "base: {base}\n"
GRID = B + "grid: {distill.temperature: [2, 4]}\n"
ALPHA = "grid: {distill.alpha: [0.5]}\n"
SEARCH = "axes: {distill.alpha: {low: 0, high: 1}}"
BAD = {  # id: (sweep file, command-line overrides, the start of the message)
    "not_yaml": ("grid: [1, 2\n", [], "sweep file '{path}': invalid YAML"),
    "not_a_mapping": ("- 1\n", [], "sweep file '{path}': expected a mapping of base, overrides, seeds, grid, random"),
    "unknown_key": (GRID + "gird: {distill.alpha: [0.5]}\n", [],
                    "gird: unknown key; allowed: base, overrides, seeds, grid, random"),
    "base_missing": (ALPHA, [], "base: missing; give the study config file"),
    "base_not_found": ("base: nope.yaml\n" + ALPHA, [], "base: config file '{folder}/nope.yaml' does not exist"),
    "no_mode": (B + "seeds: [0]\n", [], "grid: missing; give grid, random (or both), or search"),
    "search_alone": (GRID + f"search: {{trials: 2, objective: val/acc, {SEARCH}}}\n", [],
                     "search: a search stands alone"),
    "empty_grid": (B + "grid: {}\n", [], "grid: empty; give at least one axis"),
    "empty_axis": (B + "grid: {distill.alpha: []}\n", [], "grid.distill.alpha: empty list; give at least one value"),
    "value_twice": (B + "grid: {distill.alpha: [0.5, 0.5]}\n", [], "grid.distill.alpha: 0.5 is listed twice"),
    "not_a_field": (B + "grid: {distill.temprature: [2]}\n", [],
                    "grid.distill.temprature: not a config field; allowed in distill: method, mechanism, temperature"),
    "not_a_field_top": (B + "grid: {nope.x: [2]}\n", [],
                        "grid.nope.x: not a config field; allowed at the top: data, teacher"),
    "value_not_section": (B + "grid: {train.epochs.x: [2]}\n", [],
                          "grid.train.epochs.x: not a config field; train.epochs is a value, not a section"),
    "seed_axis": (B + "grid: {train.seed: [1, 2]}\n", [], "grid.train.seed: set by the sweep (use seeds)"),
    "axis_in_overrides": (B + "overrides: {distill.alpha: 0.5}\n" + ALPHA, [],
                          "grid.distill.alpha: also in overrides"),
    "axis_in_cli_overrides": (GRID, ["distill.temperature=3"], "grid.distill.temperature: also in overrides"),
    "cli_malformed": (GRID, ["train"], "override 'train': expected section.key=value"),
    "grid_value_fails": (B + "grid: {distill.temperature: [1, 0]}\n", [],
                         "grid.distill.temperature: 0 fails validation: distill.temperature: Input should be greater "
                         "than 0 (got 0)"),
    "point_fails": (B + "grid: {distill.mechanism: [offline, online]}\n", [],
                    "sweep: point p01 (distill.mechanism=online · seed 0) fails validation: distill.peers: the online "
                    "mechanism"),
    "random_no_samples": (B + "random: {axes: {distill.alpha: {low: 0.1, high: 0.9}}}\n", [],
                          "random.samples: missing; give"),
    "random_no_axes": (B + "random: {samples: 2}\n", [], "random.axes: missing; give the fields to draw"),
    "random_empty_axes": (B + "random: {samples: 2, axes: {}}\n", [], "random.axes: empty; give at least one axis"),
    "low_above_high": (B + "random: {samples: 2, axes: {distill.alpha: {low: 0.9, high: 0.1}}}\n", [],
                       "random.axes.distill.alpha.low: 0.9 is more than high 0.1; allowed: low <= high"),
    "log_low": (B + "random: {samples: 2, axes: {train.lr: {low: 0, high: 0.1, log: true}}}\n", [],
                "random.axes.train.lr.low: a log range needs low > 0 (got 0)"),
    "range_needs_both": (B + "random: {samples: 2, axes: {distill.alpha: {high: 0.9}}}\n", [],
                         "random.axes.distill.alpha.low: missing; give low and high"),
    "range_end_fails": (B + "random: {samples: 2, axes: {distill.alpha: {low: 0.5, high: 1.5}}}\n", [],
                        "random.distill.alpha: high 1.5 fails validation: distill.alpha: Input should be less than "
                        "or equal to 1"),
    "choice_fails": (B + "random: {samples: 2, axes: {student.width: {choices: [8, 0]}}}\n", [],
                     "random.student.width: 0 fails validation: student.width: Input should be greater than or equal "
                     "to 1"),
    "search_no_trials": (B + f"search: {{objective: val/acc, {SEARCH}}}\n", [],
                         "search.trials: missing; give the number of Optuna trials"),
    "objective_not_val": (B + f"search: {{trials: 5, objective: test/acc, {SEARCH}}}\n", [],
                          "search.objective: 'test/acc' is not a validation number a search optimises"),
    "override_not_a_field": (B + "overrides: {train.epoch: 3}\n" + ALPHA, [],
                             "overrides.train.epoch: not a config field; allowed in train: epochs"),
    "override_value_fails": (GRID, ["train.epochs=0"],
                             "overrides.train.epochs: 0 fails validation: train.epochs: Input should be greater than "
                             "or equal to 1"),
    "seed_twice": (GRID + "seeds: [1, 1]\n", [], "seeds: 1 is listed twice"),
}


VALIDATION = {"grid_value_fails", "point_fails", "range_end_fails", "choice_fails", "override_value_fails"}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_naming_the_field(tmp_path: Path, case: str) -> None:
    """load_sweep refuses all but what needs a config validated, which expand refuses before building points."""
    text, cli, expected = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(SweepError) as err:
        spec = load_sweep(path, cli)
        assert case in VALIDATION, "load_sweep took it"
        expand(spec)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(expected.format(path=path, folder=tmp_path)), message


def test_a_missing_sweep_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match=r"^sweep file '.*nope\.yaml' does not exist$"):
        load_sweep(tmp_path / "nope.yaml")
