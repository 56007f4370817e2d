"""kdx bench methods: the results table, written per dataset into one Markdown file."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdcore import bench
from kdcore.cli import main
from tests.helpers import TINY


@pytest.fixture
def tiny_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    lines: dict[str, list[str]] = {}
    for item in TINY:
        key, value = item.split("=")
        section, field = key.split(".")
        lines.setdefault(section, []).append(f"  {field}: {value}")
    (pairs / "digits.yaml").write_text("\n".join(f"{s}:\n" + "\n".join(v) for s, v in lines.items()) + "\n")
    monkeypatch.setattr(bench, "PAIRS", pairs)
    return tmp_path


def test_bench_writes_one_row_per_method_with_intervals_and_verdicts(tiny_pairs: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    out = tiny_pairs / "results.md"
    out.write_text("# Results\n\n<!-- bench:mnist1d:start -->\nkept\n<!-- bench:mnist1d:end -->\n")
    assert main(["bench", "methods", "--dataset", "digits", "--seeds", "2", "--methods", "kd,rkd",
                 "--out", str(out)]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| kd ") or line.startswith("| rkd ")]
    assert len(rows) == 2 and all(row.count(" [") == 3 and "cannot tell with 2 seeds" in row for row in rows)
    assert "| rkd | relation |" in text and "kept" in text  # the other dataset's table stays
    assert main(["bench", "methods", "--dataset", "digits", "--seeds", "1", "--methods", "kd",
                 "--out", str(out)]) == 0
    again = out.read_text()
    assert again.count("<!-- bench:digits:start -->") == 1 and "| rkd |" not in again and "kept" in again


@pytest.mark.parametrize(("argv", "message"), [
    (["--dataset", "nope"], "--dataset: no benchmark pair for 'nope'; allowed: digits"),
    (["--dataset", "digits", "--methods", "kd,nope"], "--methods: unknown nope"),
    (["--dataset", "digits", "--seeds", "0"], "--seeds: must be at least 1"),
])
def test_bench_bad_input_is_one_line(tiny_pairs: Path, argv: list[str], message: str,
                                     capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "methods", *argv, "--out", str(tiny_pairs / "r.md")]) == 2
    assert capsys.readouterr().err.startswith(f"kdx: error: {message}")
    assert not (tiny_pairs / "r.md").exists()


@pytest.fixture
def tiny_suite(tiny_pairs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    suites = tiny_pairs / "suites"
    suites.mkdir()
    (suites / "tiny.yaml").write_text(
        "base: ../pairs/digits.yaml\noverrides: [train.epochs=1]\nvariants:\n"
        "  - {label: plain KD}\n"
        "  - {label: chain, overrides: [distill.mechanism=progressive,\n"
        "                               'distill.assistants=[{name: mlp, width: 16}]']}\n"
        "  - {label: peers, overrides: [distill.mechanism=online, 'distill.peers=[{name: mlp, width: 16}]']}\n")
    (suites / "broken.yaml").write_text("base: ../pairs/digits.yaml\nvariants:\n"
                                        "  - {label: no peers, overrides: [distill.mechanism=online]}\n")
    monkeypatch.setattr(bench, "SUITES", suites)
    return tiny_pairs


def test_mechanism_suite_writes_one_row_per_variant_with_every_role(tiny_suite: Path) -> None:
    out = tiny_suite / "results.md"
    assert main(["bench", "mechanisms", "--suite", "tiny", "--seeds", "2", "--out", str(out)]) == 0
    text = out.read_text()
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in text.splitlines()
            if line.startswith("| ") and " ± " in line and not line.startswith("| variant")}
    assert set(rows) == {"plain KD", "chain", "peers"}
    assert "assistant_1 " in rows["chain"] and "peer_1 " in rows["peers"] and "| offline | " in rows["plain KD"]
    assert text.count("<!-- bench:mechanisms:tiny:start -->") == 1 and "Baseline (the student trained alone)" in text
    assert main(["bench", "mechanisms", "--suite", "tiny", "--seeds", "1", "--set", "distill.alpha=0.5",
                 "--out", str(out)]) == 0
    both = out.read_text()  # the plain table stays; the overridden one gets its own section
    assert both.count("<!-- bench:mechanisms:tiny:start -->") == 1
    assert "<!-- bench:mechanisms:tiny:distill.alpha=0.5:start -->" in both
    assert "### Mechanisms: tiny with `distill.alpha=0.5`, 1 seeds" in both


@pytest.mark.parametrize(("suite", "message"), [
    ("nope", "--suite: no mechanism suite 'nope'; allowed: broken, tiny"),
    ("broken", "broken.yaml: variant 'no peers': distill.peers: the online mechanism needs 1 to 3 peers"),
])
def test_a_bad_suite_fails_before_training(tiny_suite: Path, suite: str, message: str,
                                           capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "mechanisms", "--suite", suite, "--out", str(tiny_suite / "r.md")]) == 2
    assert capsys.readouterr().err.startswith(f"kdx: error: {message}")
    assert not (tiny_suite / "r.md").exists()


def test_a_methods_verdict_stands_only_after_holms_correction() -> None:
    from collections import Counter

    def row(name: str, gain: float) -> bench.MethodRow:
        baseline = [0.80, 0.82, 0.81]
        student = [b + gain + jitter for b, jitter in zip(baseline, (0.0, 0.001, -0.001), strict=True)]
        return bench.MethodRow(name, "response", student, [1.0] * 3, [1.0] * 3, [1.0] * 3, Counter(),
                               baseline_acc=baseline)

    clear, marginal = row("clear", 0.05), row("marginal", 0.003)
    alone = marginal.difference()
    rows = [clear, marginal, *(row(f"tie{i}", 0.0) for i in range(6))]
    bench.judge(rows)
    assert clear.verdict == "helps"
    assert alone.p_value is not None and alone.p_value < 0.05 < min(1.0, alone.p_value * 7)
    assert marginal.verdict == f"cannot tell after Holm's correction ({alone.verdict} alone)"
