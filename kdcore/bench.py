"""Results tables over seeds: the method zoo on one pair, and the mechanisms on one pair.

``kdx bench methods`` runs every method on one teacher/student pair and budget; ``kdx bench mechanisms``
runs a suite of variants (offline, chains, peers, generations) of one base config. The studies are
logged like any other, in their own experiment; then a table goes into a Markdown file. The methods table
gives each number as its mean with a 95% t-interval over seeds, and the paired student - baseline difference
(same seed, same initialisation and batches) with its interval and verdict, Holm-corrected across the
methods; the mechanisms table gives mean ± std, the accuracy of every other role, wall time per study, and
the findings that fired. Each table sits between its own markers, so running it again replaces only that table.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kdcore.config import load_config
from kdcore.registry import METHODS
from kdcore.seed_stats import Difference, holm, mean_interval, paired_difference

BENCH_EXPERIMENT = "kd-bench-methods"
PAIRS = Path(__file__).resolve().parent.parent / "benchmarks" / "pairs"  # <dataset>.yaml: the pair and budget
SUITES = Path(__file__).resolve().parent.parent / "benchmarks" / "mechanisms"  # <suite>.yaml: base and variants


@dataclass
class MethodRow:
    method: str
    knowledge: str
    student_acc: list[float]
    ratio_teacher: list[float]
    ratio_baseline: list[float]
    wall_s: list[float]
    findings: Counter
    baseline_acc: list[float] = field(default_factory=list)
    verdict: str = ""  # set by :func:`judge`, after Holm's correction across the table's methods

    @staticmethod
    def _mean_std(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
        mean = statistics.fmean(values) * scale
        std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
        return f"{mean:.{digits}f} ± {std:.{digits}f}"

    @staticmethod
    def _interval(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
        """Mean [low, high]: the 95% t-interval over seeds (the mean alone for one seed)."""
        estimate = mean_interval(values)
        mean = estimate.mean * scale
        if estimate.half_width is None:
            return f"{mean:.{digits}f}"
        half = estimate.half_width * scale
        return f"{mean:.{digits}f} [{mean - half:.{digits}f}, {mean + half:.{digits}f}]"

    def difference(self) -> Difference:
        return paired_difference(self.student_acc, self.baseline_acc)

    def cells(self) -> list[str]:
        fired = ", ".join(f"{code} ×{n}" for code, n in sorted(self.findings.items())) or "none"
        diff = self.difference()
        gain = f"{100 * diff.mean:+.1f}" + ("" if diff.low is None else
                                           f" [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]")
        return [self.method, self.knowledge, self._interval(self.student_acc, 100),
                self._interval(self.ratio_teacher, digits=3), gain, self.verdict or diff.verdict,
                f"{statistics.fmean(self.wall_s):.1f}", fired]


def judge(rows: list[MethodRow]) -> None:
    """Each row's verdict on student - baseline: its paired interval's, kept only where Holm's correction across
    the rows (a table of 9 methods makes 9 comparisons) still rejects "no difference" at 5%."""
    diffs = [row.difference() for row in rows]
    tested = [i for i, d in enumerate(diffs) if d.p_value is not None]
    rejected = dict(zip(tested, holm([diffs[i].p_value for i in tested]).rejected, strict=True)) if tested else {}
    for i, (row, diff) in enumerate(zip(rows, diffs, strict=True)):
        row.verdict = diff.verdict if rejected.get(i) else diff.verdict if diff.verdict.startswith("cannot") \
            else f"cannot tell after Holm's correction ({diff.verdict} alone)"


def pair_config(dataset: str) -> Path:
    path = PAIRS / f"{dataset}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PAIRS.glob("*.yaml")))
        raise ValueError(f"--dataset: no benchmark pair for {dataset!r}; allowed: {known}")
    return path


def run_methods(dataset: str, seeds: int, methods: list[str] | None = None, uri: str | None = None,
                progress: bool = False) -> tuple[list[MethodRow], dict[str, float]]:
    """Run every method (but ``none``) for ``seeds`` seeds on the dataset's benchmark pair."""
    from kdcore.study import Study
    from kdcore.tracking import MlflowTracker

    chosen = methods or [m for m in METHODS.names() if m != "none"]
    unknown = sorted(set(chosen) - set(METHODS.names()))
    if unknown:
        raise ValueError(f"--methods: unknown {', '.join(unknown)}; allowed: {', '.join(METHODS.names())}")
    path = pair_config(dataset)
    tracker = MlflowTracker(uri, BENCH_EXPERIMENT)
    rows, reference = [], {"teacher": [], "baseline": []}
    for method in chosen:
        row = MethodRow(method, METHODS.entry(method).obj.knowledge, [], [], [], [], Counter())
        for seed in range(seeds):
            cfg = load_config(path, [f"distill.method={method}", f"train.seed={seed}",
                                     f"tracking.experiment={BENCH_EXPERIMENT}"])
            summary = Study(cfg, tracker, progress=progress).run()
            m = summary.metrics
            row.student_acc.append(m["study/student_acc"])
            row.ratio_teacher.append(m["study/acc_ratio_teacher"])
            row.ratio_baseline.append(m["study/acc_ratio_baseline"])
            row.wall_s.append(m["study/wall_s"])
            row.baseline_acc.append(m["study/baseline_acc"])
            row.findings.update(f.code for f in summary.findings)
            if method == chosen[0]:
                reference["teacher"].append(m["study/teacher_acc"])
                reference["baseline"].append(m["study/baseline_acc"])
        rows.append(row)
    judge(rows)
    return rows, {k: statistics.fmean(v) for k, v in reference.items()}


def table(dataset: str, rows: list[MethodRow], reference: dict[str, float], seeds: int) -> str:
    """One dataset's section: the pair, the reference accuracies and the table, in Markdown."""
    cfg = load_config(pair_config(dataset))
    from kdcore.study import model_spec

    head = (f"### {dataset}: {model_spec(cfg.teacher)} → {model_spec(cfg.student)}, {cfg.train.epochs} epochs, "
            f"{seeds} seeds\n\nTeacher {100 * reference['teacher']:.2f}%, baseline (the student alone) "
            f"{100 * reference['baseline']:.2f}% test accuracy, mean over seeds. Config: "
            f"`benchmarks/pairs/{dataset}.yaml`. Brackets: 95% t-intervals over seeds; the gain is the paired "
            "student - baseline difference per seed, and its verdict is Holm-corrected across the methods of the "
            "table.\n\n")
    columns = ["method", "knowledge", "test acc % [95% CI]", "student / teacher", "gain over baseline, pts",
               "verdict", "wall s / study", "findings fired (studies)"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in sorted(rows, key=lambda r: -statistics.fmean(
        r.student_acc))]
    return head + "\n".join(lines) + "\n"


def write_section(path: Path, dataset: str, text: str) -> None:
    """Put ``text`` between the dataset's markers in ``path`` (created, or replacing the old table)."""
    start, end = f"<!-- bench:{dataset}:start -->", f"<!-- bench:{dataset}:end -->"
    block = f"{start}\n{text}{end}\n"
    old = path.read_text() if path.is_file() else (
        "# Results\n\nMade by `kdx bench methods --dataset DATASET --seeds 3` (every method on one teacher/student "
        "pair and one budget) and `kdx bench mechanisms --suite SUITE --seeds 3` (mechanism variants of one "
        "config). Variants that lose to the baseline are left as they came out.\n\n")
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(new)
    tmp.replace(path)


@dataclass
class SuiteRow:
    """One variant of a mechanism suite over seeds: the accuracy of every role of its studies."""

    label: str
    mechanism: str
    roles: dict[str, list[float]]  # role -> test accuracy per seed
    ratio_baseline: list[float]
    wall_s: list[float]
    findings: Counter
    shift: list[float] = field(default_factory=list)  # the student's accuracy on the shifted test split
    param_ratio: list[float] = field(default_factory=list)  # teacher / student parameters (studies with a teacher)
    speedup: list[float] = field(default_factory=list)  # teacher / student latency at batch 1
    gates: list[float] = field(default_factory=list)  # gates passed per study

    def cells(self) -> list[str]:
        from kdcore.tracker import role_key

        others = [r for r in sorted(self.roles, key=role_key) if r not in ("teacher", "baseline", "student")]
        stages = ", ".join(f"{r} {MethodRow._mean_std(self.roles[r], 100, 1)}" for r in others) or "–"
        fired = ", ".join(f"{code} ×{n}" for code, n in sorted(self.findings.items())) or "none"
        cost = (f"{statistics.fmean(self.param_ratio):.1f}x / {statistics.fmean(self.speedup):.1f}x"
                if self.param_ratio else "–")
        return [self.label, self.mechanism, MethodRow._mean_std(self.roles["student"], 100), stages,
                MethodRow._mean_std(self.shift, 100), MethodRow._mean_std(self.ratio_baseline, digits=3), cost,
                f"{statistics.fmean(self.gates):.1f}/10", f"{statistics.fmean(self.wall_s):.1f}", fired]


def suite_file(name: str) -> Path:
    path = SUITES / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SUITES.glob("*.yaml")))
        raise ValueError(f"--suite: no mechanism suite {name!r}; allowed: {known}")
    return path


def load_suite(name: str, extra: list[str] | None = None) -> tuple[Path, list[str], list[tuple[str, list[str]]]]:
    """A suite's base config, its shared overrides and its (label, overrides) variants, checked up front."""
    import yaml

    path = suite_file(name)
    raw = yaml.safe_load(path.read_text()) or {}
    base = (path.parent / str(raw.get("base", ""))).resolve()
    shared = [str(o) for o in raw.get("overrides", [])] + list(extra or [])
    variants = [(str(v["label"]), [str(o) for o in v.get("overrides", [])]) for v in raw.get("variants", [])]
    if not variants:
        raise ValueError(f"{path.name}: variants: list at least one variant with a label")
    for label, overrides in variants:  # a bad variant fails before any study trains
        try:
            load_config(base, [*shared, *overrides])
        except ValueError as err:
            raise ValueError(f"{path.name}: variant {label!r}: {err}") from None
    return base, shared, variants


def run_suite(name: str, seeds: int, uri: str | None = None, progress: bool = False,
              extra: list[str] | None = None) -> list[SuiteRow]:
    """Every variant of the suite for ``seeds`` seeds; seeds outermost, so each seed's teacher is reused.

    ``extra`` overrides apply to every variant (e.g. ``distill.alpha=0.5``), after the suite's own.
    """
    from kdcore.study import Study
    from kdcore.tracking import MlflowTracker

    base, shared, variants = load_suite(name, extra or [])
    tracker = MlflowTracker(uri, BENCH_EXPERIMENT)
    rows = {label: SuiteRow(label, "", {}, [], [], Counter()) for label, _ in variants}
    for seed in range(seeds):
        for label, overrides in variants:
            cfg = load_config(base, [*shared, *overrides, f"train.seed={seed}",
                                     f"tracking.experiment={BENCH_EXPERIMENT}"])
            summary = Study(cfg, tracker, progress=progress).run()
            row = rows[label]
            row.mechanism = cfg.distill.mechanism
            for role, metrics in summary.roles.items():
                row.roles.setdefault(role, []).append(metrics["test/acc"])
            row.ratio_baseline.append(summary.metrics["study/acc_ratio_baseline"])
            row.shift.append(summary.roles["student"]["shift/acc"])
            if "study/param_ratio" in summary.metrics:
                row.param_ratio.append(summary.metrics["study/param_ratio"])
                row.speedup.append(summary.metrics["study/speedup"])
            row.gates.append(float(sum(g.status == "passed" for g in summary.gates)))
            row.wall_s.append(summary.metrics["study/wall_s"])
            row.findings.update(f.code for f in summary.findings)
    return list(rows.values())


def suite_table(name: str, rows: list[SuiteRow], seeds: int, extra: list[str] | None = None) -> str:
    """A suite's section: the baseline and teacher it is read against, then one row per variant."""
    baseline = [a for row in rows for a in row.roles.get("baseline", [])]
    teacher = [a for row in rows for a in row.roles.get("teacher", [])]
    also = f" with {', '.join(f'`{o}`' for o in extra)}" if extra else ""
    head = (f"### Mechanisms: {name}{also}, {seeds} seeds\n\nConfig: `benchmarks/mechanisms/{name}.yaml`{also}. "
            f"Baseline (the "
            f"student trained alone) {MethodRow._mean_std(baseline, 100)}%"
            + (f", teacher {MethodRow._mean_std(teacher, 100)}%" if teacher else "")
            + " test accuracy (mean ± std over every study).\n\n")
    columns = ["variant", "mechanism", "student test acc % (mean ± std)", "other roles, test acc % (mean ± std)",
               "student shift acc %", "student / baseline", "teacher / student params, speed", "gates passed",
               "wall s / study", "findings fired (studies)"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return head + "\n".join(lines) + "\n"
