"""The kdx command line: a study end to end, the listings, and bad input that logs nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kdcore.cli import main
from kdcore.config import load_config
from kdcore.registry import DATASETS, MECHANISMS, METHODS, MODELS
from kdcore.sweep_spec import is_sweep_file
from tests.helpers import TINY

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    lines = {}
    for item in TINY:
        key, value = item.split("=")
        section, field = key.split(".")
        lines.setdefault(section, []).append(f"  {field}: {value}")
    path = tmp_path / "tiny.yaml"
    path.write_text("\n".join(f"{s}:\n" + "\n".join(v) for s, v in lines.items()) + "\n")
    return path


def test_run_prints_summary_and_studies_lists_it(config_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", str(config_file), "distill.temperature=8", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for word in ("teacher", "baseline", "student", "student/teacher", "student/baseline", "T=8.0"):
        assert word in out
    assert (config_file.parent / "mlflow.db").is_file()
    study_id = out.split()[1]
    assert main(["studies"]) == 0
    listing = capsys.readouterr().out
    assert study_id[:8] in listing and "FINISHED" in listing and "digits" in listing
    assert main(["run", str(config_file), "tracking.study_name=a name the table shows in full", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["studies", "--limit", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "a name the table shows in full" in lines[1] and study_id[:8] not in "".join(lines)
    assert lines[-1] == "showing the newest 1 of 2 studies; --all shows every one, --limit N more"
    assert main(["studies", "--all"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 3 and len({len(row) for row in rows}) == 1  # every column aligned, the header too
    assert main(["studies", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["study_id"] for r in records][1] == study_id and records[0]["dataset"] == "digits"
    assert main(["studies", "--dataset", "mnist1d"]) == 0
    assert capsys.readouterr().out.startswith("no studies on dataset mnist1d in ")


def test_run_of_an_online_study_reports_its_peers(config_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", str(config_file), "distill.mechanism=online", "distill.peers=[{name: mlp, width: 16}]",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "peer_1" in out and "best peer" in out and "(no teacher: online mechanism)" in out
    assert "student/teacher" not in out


@pytest.mark.parametrize(("args", "message"), [
    (["run", "missing.yaml"], "config file 'missing.yaml' does not exist"),
    (["run", "{cfg}", "distill.method=nope"], "distill.method: unknown method 'nope'"),
    (["run", "{cfg}", "distill.temperature=-2"], "distill.temperature: Input should be greater than 0"),
    (["run", "{cfg}", "teacher.name=cnn1d"], "teacher.name: model cnn1d needs 2-d inputs"),
    (["run", "{cfg}", "train.device=cuda:7"], "train.device:"),
    (["run"], "run: give a CONFIG file"),
    (["run", "{cfg}", "--resume", "abc"], "--resume continues a study with its own config"),
])
def test_bad_input_is_one_line_exit_2_and_logs_nothing(
    config_file: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    code = main([a.replace("{cfg}", str(config_file)) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"kdx: error: {message}") and err.count("\n") == 1, err
    assert not (config_file.parent / "mlflow.db").exists()


def test_resume_of_unknown_study_is_a_usage_error(config_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--resume", "0123456789abcdef"]) == 2
    assert capsys.readouterr().err.startswith("kdx: error: --resume: cannot resume 0123456789abcdef")


def test_list_shows_every_registered_component(capsys: pytest.CaptureFixture) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for registry in (DATASETS, MODELS, METHODS, MECHANISMS):
        for entry in registry:  # name, then the description, in the kind's aligned column
            assert any(line.startswith(f"  {entry.name} ") and line.endswith(f" {entry.description}")
                       for line in lines), entry.name
        block = lines[lines.index(f"{registry.kind}s:") + 1:][:len(registry.names())]
        assert len({line.index(entry.description) for line, entry in zip(block, registry, strict=True)}) == 1


def test_console_script_help_explains_every_option() -> None:
    kdx = shutil.which("kdx", path=str(Path(sys.executable).parent))
    assert kdx, "the kd-explorer distribution is not installed"
    expected = {"run": ["--resume", "--tracking-uri", "--no-progress", "KEY=VALUE"],
                "studies": ["--experiment", "--limit", "--all", "--dataset", "--json", "--tracking-uri"],
                "list": ["KIND", "datasets"],
                "dashboard": ["--host", "--port", "--allowed-host", "--max-concurrent", "--no-samples", "--workshop",
                              "--data-root"],
                "samples": ["load", "make"], "diagnose": ["STUDY_ID", "--tracking-uri"],
                "export": ["STUDY", "--role", "--format", "--out", "--register"],
                "sweep": ["SWEEP", "KEY=VALUE", "--resume", "--dry-run", "--tracking-uri"]}
    for command, options in expected.items():
        out = subprocess.run([kdx, command, "--help"], capture_output=True, text=True, check=True).stdout
        assert all(option in out for option in options), (command, out)


@pytest.mark.parametrize("example", sorted(str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.yaml")
                                            if "inputs/" not in p.read_text()  # those: tests/test_byo_recipes.py
                                            and not is_sweep_file(p)))  # those: test_sweep_spec.py
def test_examples_are_valid(example: str) -> None:
    from kdcore.config import load_config

    load_config(EXAMPLES / example)


def test_samples_load_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "samples"  # two of the shipped samples: the whole set loads in tests/test_samples.py
    folder.mkdir()
    for path in sorted((Path(__file__).resolve().parents[1] / "sample_runs").glob("digits-*-kd-t*.json"))[:2]:
        shutil.copy(path, folder / path.name)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["samples", "load", "--folder", str(folder), "--tracking-uri", uri]) == 0
    first = capsys.readouterr().out
    assert main(["samples", "load", "--folder", str(folder), "--tracking-uri", uri]) == 0
    assert first.startswith("loaded 2 studies") and capsys.readouterr().out.startswith("loaded 0 studies")
    assert main(["studies", "--tracking-uri", uri]) == 0
    assert capsys.readouterr().out.count("FINISHED") == 2


def test_diagnose_recomputes_findings_and_gates(config_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", str(config_file), "--no-progress"]) == 0
    study_id = capsys.readouterr().out.split()[1]
    assert main(["diagnose", study_id]) == 0
    out = capsys.readouterr().out
    assert out.count("  gate ") == 10 and "gate  8 not measurable" not in out  # the advisor re-assesses it
    assert main(["diagnose", "0123456789abcdef"]) == 2
    assert capsys.readouterr().err.startswith("kdx: error: diagnose: cannot read study 0123456789abcdef")
    assert main(["diagnose", study_id[:8]]) == 0  # the short id the dashboard and summaries show
    assert capsys.readouterr().out.count("  gate ") == 10


def test_a_study_prefix_names_one_study_or_says_why_not(monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from kdcore import tracking

    ids = ["6949efa3aaaa", "6949efa3bbbb", "12345678cccc"]
    monkeypatch.setattr(tracking, "list_studies", lambda uri=None: pd.DataFrame({"study_id": ids}))
    assert tracking.resolve_study_id("1234", "sqlite:///x.db") == "12345678cccc"
    assert tracking.resolve_study_id("6949efa3bbbb", "sqlite:///x.db") == "6949efa3bbbb"
    with pytest.raises(tracking.StudyNotFound, match=r"^'6949efa3' starts 2 study ids \(6949efa3aaaa, 6949efa3bbbb\)"):
        tracking.resolve_study_id("6949efa3", "sqlite:///x.db")
    with pytest.raises(tracking.StudyNotFound, match=r"^no study 'ffff' in sqlite:///x.db"):
        tracking.resolve_study_id("ffff", "sqlite:///x.db")


def _tiny_base(tmp_path: Path) -> Path:
    base = tmp_path / "base.yaml"
    base.write_text("train: {epochs: 1, batch_size: 64, threads: 1, device: cpu}\n")
    return base


def test_advise_prints_the_path_and_writes_a_runnable_progressive_study(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    out_file = tmp_path / "advised.yaml"
    assert main(["advise", "--dataset", "digits", "--teacher", "mlp:large", "--student", "mlp:tiny",
                 "--write", str(out_file), "--base", str(_tiny_base(tmp_path))]) == 0
    printed = capsys.readouterr().out
    assert [line[:2] for line in printed.splitlines() if line[:1].isdigit()] == ["1.", "2.", "3.", "4."]
    assert "mechanism       progressive" in printed and printed.count("assistant ") == 2
    assert main(["run", str(out_file), "--no-progress"]) == 0
    summary = capsys.readouterr().out
    assert "assistant_1" in summary and "assistant_2" in summary
    study_id = summary.split()[1]
    assert main(["diagnose", study_id]) == 0
    assert "gate  8 passed" in capsys.readouterr().out  # the advice's rationale is recorded on the study
    assert main(["advise", "--from-study", study_id]) == 0
    assert "performance " in capsys.readouterr().out  # measured accuracies now size the gap


def test_advise_reads_a_situation_file_and_flags_win(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    situation = tmp_path / "situation.yaml"
    situation.write_text("teacher: {params: 100000, accuracy: 0.9}\nstudent: {params: 1000, accuracy: 0.8}\n")
    assert main(["advise", str(situation)]) == 0
    assert "performance ratio 1.1-1.5x" in capsys.readouterr().out
    assert main(["advise", str(situation), "--student-acc", "0.2"]) == 0
    assert "performance ratio 3x or more" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--teacher", "mlp:huge", "--student", "mlp"], "teacher.size: mlp has no size 'huge'"),
    (["--teacher", "mlp", "--student", "mlp", "--needs", "vibes"], "needs.0:"),
    (["--dataset", "digits", "--teacher", "mlp", "--student", "mlp", "--several-learners", "--unstable-domain",
      "--needs", "patterns", "--write", "x.yaml"],
     "advice: distill.method: the online mechanism exchanges outputs between peers"),
])
def test_advise_bad_input_is_one_line_and_writes_nothing(
        argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["advise", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kdx: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "x.yaml").exists()


def test_advise_writes_a_runnable_online_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["advise", "--dataset", "digits", "--teacher", "mlp:medium", "--student", "mlp:small",
                 "--several-learners", "--unstable-domain", "--write", "online.yaml"]) == 0
    cfg = load_config(tmp_path / "online.yaml")
    assert cfg.distill.mechanism == "online" and [p.name for p in cfg.distill.peers] == ["mlp"]
