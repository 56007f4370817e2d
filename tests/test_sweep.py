"""kdx sweep end to end on tiny studies: the sweep run and its studies' tags, the summary, resume, dry runs,
bad input that logs nothing, and a failing study that the sweep reports and gets past."""

from __future__ import annotations

import json
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from kdcore.cli import main
from kdcore.seed_stats import holm
from kdcore.study import FAILURE_TAG, Study
from kdcore.sweep import SUMMARY_FILE, SWEEP_ROLE
from kdcore.tracking import list_studies
from tests.helpers import tiny_config

GRID = """
base: tiny.yaml
name: tiny
seeds: [0, 1]
grid:
  distill.temperature: [2, 4]
"""


def write_sweep(folder: Path, text: str = GRID) -> Path:
    """A tiny base config (digits, two small MLPs, one epoch) and a sweep file of 2 points x 2 seeds beside it."""
    (folder / "tiny.yaml").write_text(yaml.safe_dump(tiny_config().to_dict()))
    path = folder / "sweep.yaml"
    path.write_text(text)
    return path


def sweep_runs(uri: str) -> list:
    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()],
                              f"tags.`kd.role` = '{SWEEP_ROLE}'")


def studies_of(uri: str, sweep_id: str) -> list:
    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()],
                              f"tags.`kd.sweep_id` = '{sweep_id}' AND tags.`kd.role` = 'study'")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str, str]:
    """One complete sweep (4 studies), shared by the tests that only read it: (uri, sweep file, stdout, sweep id)."""
    folder = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    path = write_sweep(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        out = StringIO()
        with redirect_stdout(out):
            assert main(["sweep", str(path), "--tracking-uri", uri]) == 0
    (run,) = sweep_runs(uri)
    return uri, path, out.getvalue(), run.info.run_id


def test_sweep_run_and_its_studies_are_tagged(finished: tuple[str, Path, str, str]) -> None:
    uri, path, out, sweep_id = finished
    run = MlflowClient(uri).get_run(sweep_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["kd.sweep_id"] == sweep_id and run.data.tags["kd.sweep_name"] == "tiny"
    spec = MlflowClient(uri).download_artifacts(sweep_id, "sweep.yaml")
    assert Path(spec).read_text() == path.read_text()
    studies = studies_of(uri, sweep_id)
    keys = sorted(s.data.tags["kd.sweep_key"] for s in studies)
    assert keys == ["p00-s0", "p00-s1", "p01-s0", "p01-s1"]
    for study in studies:
        assert study.info.status == "FINISHED"
        assert study.data.tags["mlflow.parentRunId"] == sweep_id
        assert study.data.tags["kd.sweep_point"] == study.data.tags["kd.sweep_key"][:3]
    lines = out.splitlines()
    assert lines[0] == "[1/4] p00 distill.temperature=2 · seed 0: running"
    assert lines[1].startswith("[1/4] p00 distill.temperature=2 · seed 0: student ") and "baseline" in lines[1]


def test_study_lists_show_the_studies_but_not_the_sweep(finished: tuple[str, Path, str, str]) -> None:
    uri, _, _, sweep_id = finished
    listed = list_studies(uri)
    assert sorted(listed["study_id"]) == sorted(s.info.run_id for s in studies_of(uri, sweep_id))
    assert sweep_id not in set(listed["study_id"])


def test_summary_has_one_row_per_point_with_its_difference(finished: tuple[str, Path, str, str]) -> None:
    uri, _, out, sweep_id = finished
    summary = json.loads(Path(MlflowClient(uri).download_artifacts(sweep_id, SUMMARY_FILE)).read_text())
    assert [row["point"] for row in summary["points"]] == ["p00", "p01"]
    for row in summary["points"]:
        assert row["seeds"] == [0, 1] and len(row["student_acc"]) == len(row["baseline_acc"]) == 2
        assert "pts" in row["difference"] and "n = 2" in row["difference"]
    tested = [row for row in summary["points"] if row["p_value"] is not None]
    assert [row["p_holm"] for row in tested] == list(holm([row["p_value"] for row in tested]).adjusted)
    tested = len(tested)
    assert summary["correction"] == f"Holm-corrected across {tested} points"
    assert f"Holm-corrected across {tested} points" in out
    assert any(line.startswith("  p01 distill.temperature=4") for line in out.splitlines())


def test_resume_of_a_complete_sweep_runs_nothing(finished: tuple[str, Path, str, str],
                                                 capsys: pytest.CaptureFixture) -> None:
    uri, path, _, sweep_id = finished
    assert main(["sweep", str(path), "--tracking-uri", uri, "--resume", sweep_id[:8]]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == 4 and "running" not in out
    assert len(studies_of(uri, sweep_id)) == 4 and len(sweep_runs(uri)) == 1


def test_failing_study_is_reported_and_the_sweep_goes_on_then_resume_reruns_it(
        tmp_path: Path, sqlite_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    path = write_sweep(tmp_path, GRID.replace("seeds: [0, 1]", "seeds: [0]"))
    real = Study.run

    def broken(self: Study):  # the second point fails after its study started
        if self.cfg.distill.temperature == 2:
            raise RuntimeError("disk on fire")
        return real(self)

    monkeypatch.setattr(Study, "run", broken)
    assert main(["sweep", str(path)]) == 1
    out = capsys.readouterr().out
    assert "[1/2] p00 distill.temperature=2 · seed 0: FAILED (RuntimeError: disk on fire)" in out
    assert "[2/2] p01 distill.temperature=4 · seed 0: student" in out
    assert "failed p00-s0" in out
    (run,) = sweep_runs(sqlite_uri)
    assert run.info.status == "FAILED" and "p00-s0" in run.data.tags[FAILURE_TAG]
    failed = [s for s in studies_of(sqlite_uri, run.info.run_id) if s.info.status == "FAILED"]
    assert len(failed) == 1 and "disk on fire" in failed[0].data.tags[FAILURE_TAG]

    monkeypatch.setattr(Study, "run", real)
    assert main(["sweep", str(path), "--resume", run.info.run_id]) == 0
    out = capsys.readouterr().out
    assert "[1/2] p00 distill.temperature=2 · seed 0: running" in out and "[2/2] p01" in out and "skipped" in out
    assert MlflowClient(sqlite_uri).get_run(run.info.run_id).info.status == "FINISHED"
    assert FAILURE_TAG not in MlflowClient(sqlite_uri).get_run(run.info.run_id).data.tags


def test_resume_with_another_file_is_refused(finished: tuple[str, Path, str, str], tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    uri, _, _, sweep_id = finished
    other = write_sweep(tmp_path, GRID.replace("[2, 4]", "[2, 8]"))
    assert main(["sweep", str(other), "--tracking-uri", uri, "--resume", sweep_id]) == 2
    assert "another sweep file" in capsys.readouterr().err
    assert len(sweep_runs(uri)) == 1


def test_dry_run_prints_the_points_and_opens_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path)
    assert main(["sweep", str(path), "--dry-run", "--tracking-uri", f"sqlite:///{tmp_path / 'x.db'}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["p00-s0", "distill.temperature=2", "·", "seed", "0"]
    assert len(lines) == 5 and lines[-1].startswith("4 studies")
    assert not list(tmp_path.glob("*.db"))


def test_ctrl_c_ends_the_sweep_killed_and_says_how_to_resume(tmp_path: Path, sqlite_uri: str,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture) -> None:
    path = write_sweep(tmp_path)

    def interrupted(self: Study):
        raise KeyboardInterrupt

    monkeypatch.setattr(Study, "run", interrupted)
    assert main(["sweep", str(path)]) == 130
    (run,) = sweep_runs(sqlite_uri)
    assert run.info.status == "KILLED"
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"kdx sweep {path} --resume {run.info.run_id}")


@pytest.mark.parametrize(("text", "message"), [
    (GRID.replace("distill.temperature", "distill.temprature"), "grid.distill.temprature: not a config field"),
    (GRID.replace("[2, 4]", "[2, -1]"), "grid.distill.temperature: -1 fails validation"),
    ("base: tiny.yaml\nsearch:\n  trials: 2\n  objective: val/acc\n  axes: {distill.alpha: {low: 0.1, high: 1.9}}\n",
     "search.distill.alpha: high 1.9 fails validation"),
])
def test_bad_sweep_is_one_line_and_logs_nothing(text: str, message: str, tmp_path: Path, sqlite_uri: str,
                                                capsys: pytest.CaptureFixture) -> None:
    assert main(["sweep", str(write_sweep(tmp_path, text)), "--tracking-uri", sqlite_uri]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kdx: error: ") and message in err and err.count("\n") == 1
    assert not sweep_runs(sqlite_uri) and list_studies(sqlite_uri).empty


SEARCH = """
base: tiny.yaml
name: searched
seeds: [0, 1]
search:
  trials: 4
  objective: val/ratio_baseline
  prune: {prune}
  axes:
    distill.temperature: {{low: 1, high: 8, log: true}}
    distill.method: {{choices: [kd, dist]}}
"""


def test_an_optuna_search_runs_its_trials_per_seed_and_names_its_best_on_validation(
        tmp_path: Path, sqlite_uri: str) -> None:
    path = write_sweep(tmp_path, SEARCH.format(prune="false"))
    out = StringIO()
    with redirect_stdout(out):
        assert main(["sweep", str(path), "--tracking-uri", sqlite_uri]) == 0
    (run,) = sweep_runs(sqlite_uri)
    summary = json.loads(Path(MlflowClient(sqlite_uri).download_artifacts(run.info.run_id, SUMMARY_FILE)).read_text())
    assert [row["point"] for row in summary["points"]] == ["p00", "p01", "p02", "p03"]
    assert all(row["seeds"] == [0, 1] and set(row["values"]) == {"distill.temperature", "distill.method"}
               for row in summary["points"])
    assert all(1 <= row["values"]["distill.temperature"] <= 8 for row in summary["points"])
    studies = studies_of(sqlite_uri, run.info.run_id)
    assert len(studies) == 8
    scores = {}  # the objective per trial, from the studies' own validation numbers
    for study in studies:
        scores.setdefault(study.data.tags["kd.sweep_point"], []).append(
            study.data.metrics["study/val_acc_ratio_baseline"])
    assert summary["best"] == max(scores, key=lambda point: sum(scores[point]))
    assert "search's best trial on val/ratio_baseline" in summary["best_rule"]
    assert f"best on validation: {summary['best']}" in out.getvalue()


def test_a_pruned_trial_ends_killed_with_its_reason_and_the_search_goes_on(
        tmp_path: Path, sqlite_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: self.number == 2)  # the third trial lags
    path = write_sweep(tmp_path, SEARCH.format(prune="true"))
    with redirect_stdout(StringIO()):
        assert main(["sweep", str(path), "--tracking-uri", sqlite_uri]) == 0
    (run,) = sweep_runs(sqlite_uri)
    summary = json.loads(Path(MlflowClient(sqlite_uri).download_artifacts(run.info.run_id, SUMMARY_FILE)).read_text())
    (pruned,) = summary["pruned"]
    assert pruned["key"] == "p02-s0" and "pruned by the search at epoch 0" in pruned["reason"]
    study = MlflowClient(sqlite_uri).get_run(pruned["study_id"])
    assert study.info.status == "KILLED" and "pruned by the search" in study.data.tags[FAILURE_TAG]
    keys = sorted(s.data.tags["kd.sweep_key"] for s in studies_of(sqlite_uri, run.info.run_id))
    assert keys == ["p00-s0", "p00-s1", "p01-s0", "p01-s1", "p02-s0", "p03-s0", "p03-s1"]  # its seed 1 never ran
    assert summary["failed"] == [] and run.info.status == "FINISHED"


def test_every_study_of_a_temperature_sweep_is_diagnosed_last_with_all_its_siblings(
        tmp_path: Path, sqlite_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import kdcore.study_results as results

    seen: dict[str, int] = {}
    real = results.temperature_siblings

    def spy(tracker, study_id):
        found = real(tracker, study_id)
        seen[study_id] = len(found)  # the last diagnosis of each study wins
        return found

    monkeypatch.setattr(results, "temperature_siblings", spy)
    path = write_sweep(tmp_path, GRID.replace("seeds: [0, 1]", "seeds: [0]").replace("[2, 4]", "[1, 2, 4]"))
    with redirect_stdout(StringIO()):
        assert main(["sweep", str(path), "--tracking-uri", sqlite_uri]) == 0
    assert sorted(seen.values()) == [2, 2, 2]  # each saw the other two temperatures, the first ones again at the end


def test_the_summary_as_markdown_ranks_points_by_gain_and_marks_the_validation_choice(
        finished: tuple[str, Path, str, str]) -> None:
    from kdcore.sweep import summary_markdown

    uri, _, _, sweep_id = finished
    summary = json.loads(Path(MlflowClient(uri).download_artifacts(sweep_id, SUMMARY_FILE)).read_text())
    text = summary_markdown(summary, "sweep.yaml")
    rows = [line for line in text.splitlines() if line.startswith("| distill.temperature=")]
    gains = [float(row.split(" | ")[3].split(" ")[0]) for row in rows]
    assert len(rows) == 2 and gains == sorted(gains, reverse=True)
    best = next(row for row in summary["points"] if row["point"] == summary["best"])
    assert sum("(best on validation)" in row for row in rows) == 1
    assert any(row.startswith(f"| {best['label']} **(best on validation)**") for row in rows)
    assert "Holm-corrected across 2 points" in text and "`kdx sweep sweep.yaml`" in text
