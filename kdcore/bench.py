"""The method zoo's results table: every method on one teacher/student pair and budget, over seeds.

``kdx bench methods`` runs the studies (logged like any other, in their own experiment), then writes
one table per dataset into a Markdown file: test accuracy mean ± std, the ratios to the teacher and
to the baseline, wall time per study, and the findings that fired. Each dataset's table sits between
its own markers, so running one dataset again replaces only its table.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kdcore.config import load_config
from kdcore.registry import METHODS

BENCH_EXPERIMENT = "kd-bench-methods"
PAIRS = Path(__file__).resolve().parent.parent / "benchmarks" / "pairs"  # <dataset>.yaml: the pair and budget


@dataclass
class MethodRow:
    method: str
    knowledge: str
    student_acc: list[float]
    ratio_teacher: list[float]
    ratio_baseline: list[float]
    wall_s: list[float]
    findings: Counter

    @staticmethod
    def _mean_std(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
        mean = statistics.fmean(values) * scale
        std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
        return f"{mean:.{digits}f} ± {std:.{digits}f}"

    def cells(self) -> list[str]:
        fired = ", ".join(f"{code} ×{n}" for code, n in sorted(self.findings.items())) or "none"
        return [self.method, self.knowledge, self._mean_std(self.student_acc, 100),
                self._mean_std(self.ratio_teacher, digits=3), self._mean_std(self.ratio_baseline, digits=3),
                f"{statistics.fmean(self.wall_s):.1f}", fired]


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
            row.findings.update(f.code for f in summary.findings)
            if method == chosen[0]:
                reference["teacher"].append(m["study/teacher_acc"])
                reference["baseline"].append(m["study/baseline_acc"])
        rows.append(row)
    return rows, {k: statistics.fmean(v) for k, v in reference.items()}


def table(dataset: str, rows: list[MethodRow], reference: dict[str, float], seeds: int) -> str:
    """One dataset's section: the pair, the reference accuracies and the table, in Markdown."""
    cfg = load_config(pair_config(dataset))
    from kdcore.study import model_spec

    head = (f"### {dataset}: {model_spec(cfg.teacher)} → {model_spec(cfg.student)}, {cfg.train.epochs} epochs, "
            f"{seeds} seeds\n\nTeacher {100 * reference['teacher']:.2f}%, baseline (the student alone) "
            f"{100 * reference['baseline']:.2f}% test accuracy, mean over seeds. Config: "
            f"`benchmarks/pairs/{dataset}.yaml`.\n\n")
    columns = ["method", "knowledge", "test acc % (mean ± std)", "student / teacher", "student / baseline",
               "wall s / study", "findings fired (studies)"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in sorted(rows, key=lambda r: -statistics.fmean(
        r.student_acc))]
    return head + "\n".join(lines) + "\n"


def write_section(path: Path, dataset: str, text: str) -> None:
    """Put ``text`` between the dataset's markers in ``path`` (created, or replacing the old table)."""
    start, end = f"<!-- bench:{dataset}:start -->", f"<!-- bench:{dataset}:end -->"
    block = f"{start}\n{text}{end}\n"
    old = path.read_text() if path.is_file() else (
        "# Method zoo results\n\nMade by `kdx bench methods --dataset DATASET --seeds 3`: every method on one "
        "teacher/student pair and one budget. Methods that lose to the baseline are left as they came out.\n\n")
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(new)
    tmp.replace(path)
