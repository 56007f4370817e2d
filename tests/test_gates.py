"""Every quality gate passes and fails, and every detector fires and stays quiet, on real studies.

Three sets of real results, each made once for the module: the shipped sample studies replayed into a
SQLite store; tiny digits studies whose budgets make the outcome certain (a student identical to its
teacher, a one-unit student, a one-unit teacher, an untrained student); and a small MNIST-1D temperature
sweep for the survey's knowledge-confusion rule.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass

import pytest
import yaml

from kdcore import diagnostics as dx
from kdcore.config import apply_overrides, load_config, validate
from kdcore.samples import SAMPLE_EXPERIMENT, SAMPLES_DIR, load_samples
from kdcore.siblings import comparable, temperature_siblings
from kdcore.study import Study
from kdcore.study_results import study_results
from kdcore.tracker import MemoryTracker
from kdcore.tracking import MlflowTracker, list_studies, read_artifact
from tests.helpers import tiny_config


@dataclass
class Recorded:
    """A study as the diagnostics read it, with its temperature siblings and its own config."""

    results: dx.StudyResults
    siblings: list[dx.StudyResults]
    config: dict
    where: tuple[str, str] = ("", "")  # (store uri, study id) of a stored study

    def findings(self) -> list[dx.Finding]:
        return dx.detect(self.results, self.siblings)

    def gate(self, number: int) -> dx.Gate:
        return dx.evaluate_gates(self.results, self.findings())[number - 1]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recorded]:
    """Every shipped sample study, loaded into a fresh store, by name; its siblings are those of the others
    that :func:`kdcore.siblings.comparable` matches (temperature_siblings itself is tested once below)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('samples') / 'mlflow.db'}"
    load_samples(SAMPLES_DIR, uri)
    tracker = MlflowTracker(uri, SAMPLE_EXPERIMENT)
    studies = list_studies(uri, SAMPLE_EXPERIMENT)
    read = {name: (study_results(tracker, study_id), yaml.safe_load(read_artifact(study_id, "config.yaml", uri)))
            for study_id, name in zip(studies["study_id"], studies["name"], strict=True)}
    ids = dict(zip(studies["name"], studies["study_id"], strict=True))
    return {name: Recorded(results, [other for key, (other, _) in read.items() if key != name and
                                     comparable(other.params) == comparable(results.params)], config,
                           (uri, ids[name]))
            for name, (results, config) in read.items()}


def run(tracker: MemoryTracker, *overrides: str) -> Recorded:
    """A tiny digits study (MLPs of one hidden layer), run for real."""
    summary = Study(tiny_config("train.epochs=4", *overrides), tracker, progress=False).run()
    return Recorded(study_results(tracker, summary.study_id), [], summary.cfg.to_dict())


@pytest.fixture(scope="module")
def tiny() -> dict[str, Recorded]:
    tracker = MemoryTracker()
    return {
        # the student trains exactly as the baseline, and with the teacher's architecture exactly as the teacher
        "copy": run(tracker, "teacher.width=64", "student.width=64", "distill.method=none"),
        "one unit": run(tracker, "teacher.width=64", "student.width=1", "distill.method=none"),
        # a one-unit teacher, copied at T=1 by a student that learns nothing else
        "bad teacher": run(tracker, "teacher.width=1", "student.width=64", "distill.alpha=1", "distill.temperature=1"),
        "bad teacher, accepted": run(tracker, "teacher.width=1", "student.width=64", "distill.alpha=1",
                                     "distill.temperature=1", "distill.accepted_boundaries=[needs_new_capabilities]"),
        # hints of weight 0 and no label loss: the student keeps its initial weights
        "untrained": run(tracker, "teacher.width=64", "student.width=64", "distill.method=fitnet",
                         "distill.params.weight=0", "distill.params.ce_weight=0"),
    }


# An MLP copies a 1-d CNN's answers on 700 training signals (alpha 1): its KD term converges at every
# temperature, yet it gains a small share of the teacher's advantage. The softer targets of T=4 help it most.
SWEEP = ["data.name=mnist1d", "data.n_samples=1000", "teacher.name=cnn1d", "teacher.width=32", "teacher.depth=2",
         "student.name=mlp", "student.width=128", "student.depth=2", "distill.alpha=1", "train.epochs=20",
         "train.teacher_epochs=40", "train.batch_size=64", "train.lr=0.003", "train.threads=1", "train.device=cpu"]
TEMPERATURES = (0.1, 0.5, 4.0)


@pytest.fixture(scope="module")
def sweep() -> dict[float, Recorded]:
    """The same study at three temperatures (one teacher, reused), each with its siblings."""
    tracker = MemoryTracker()
    ids = {t: Study(load_config(None, [*SWEEP, f"distill.temperature={t}"]), tracker, progress=False).run().study_id
           for t in TEMPERATURES}
    return {t: Recorded(study_results(tracker, i), temperature_siblings(tracker, i), {}) for t, i in ids.items()}


# --- gates ------------------------------------------------------------------------------------------
def test_gate_1_student_against_teacher_and_baseline(tiny) -> None:
    assert tiny["copy"].gate(1).status == "passed"  # the student is the teacher
    assert tiny["one unit"].gate(1).status == "failed"


def test_gate_2_generalisation_gap_against_the_baseline(samples, tiny) -> None:
    assert tiny["copy"].gate(2).status == "passed"  # the same gap as the baseline's
    gate = samples["digits cnn2d->mlp fitnet seed0"].gate(2)  # hints widen the gap by 2.6 points
    assert gate.status == "failed" and gate.numbers["excess_points"] > 2


def test_gate_3_capacity_table(samples) -> None:
    assert samples["digits cnn2d->mlp kd T4 seed0"].gate(3).status == "passed"  # 1.04x: direct
    assert samples["provoked progressive_degradation seed0"].gate(3).status == "passed"  # 4x, two assistants
    gate = samples["provoked capacity_mismatch seed0"].gate(3)  # 1.97x without an assistant
    assert gate.status == "failed" and gate.numbers["performance_ratio"] > 1.5


def test_gate_4_fails_when_the_knowledge_does_not_reach_the_student(samples) -> None:
    gate = samples["provoked knowledge_confusion seed0"].gate(4)
    assert gate.status == "failed" and gate.numbers["kd_loss_share"] < dx.CONVERGED_SHARE
    assert samples["worked example 1 - arithmetic transformer chain seed0"].gate(4).status == "passed"


def test_gate_5_shifted_split(samples) -> None:
    gate = samples["worked example 1 - arithmetic transformer chain seed0"].gate(5)
    assert gate.status == "failed" and gate.numbers["shift_acc"] == 0.0
    assert samples["fixed cross_modal_failure - aligned seed0"].gate(5).status == "passed"
    gate = samples["worked example 2 - rgb->depth aligned seed0"].gate(5)  # features + relations shift worse
    assert gate.status == "failed" and gate.numbers["baseline_shift_acc"] - gate.numbers["shift_acc"] > 0.02


def test_gate_6_no_failure_mode(samples) -> None:
    assert samples["digits cnn2d->mlp kd T4 seed0"].gate(6).status == "passed"
    assert samples["provoked capacity_mismatch seed0"].gate(6).status == "failed"


def test_gate_7_compression_must_be_real(samples, tiny) -> None:
    assert samples["digits cnn2d->mlp kd T4 seed0"].gate(7).status == "passed"
    assert tiny["copy"].gate(7).status == "failed"  # the same architecture on both sides
    assert samples["provoked knowledge_confusion seed0"].gate(7).status == "failed"  # the student is 3x larger


def test_gate_8_boundaries_must_be_accepted(tiny, samples) -> None:
    gate = tiny["bad teacher"].gate(8)  # the teacher is worse than the student alone
    assert gate.status == "failed" and "needs_new_capabilities" in gate.reason
    assert tiny["bad teacher, accepted"].gate(8).status == "passed"
    gate = samples["provoked capacity_mismatch seed0"].gate(8)  # a 1.97x gap advises a chain
    assert gate.status == "failed" and "ran offline" in gate.reason and "progressive" in gate.reason


def test_gate_9_where_the_teacher_fails(tiny, samples) -> None:
    assert tiny["copy"].gate(9).status == "passed"
    gate = tiny["bad teacher"].gate(9)  # the student copies a teacher that is wrong where it is wrong
    assert gate.status == "failed" and gate.numbers["student_acc"] < gate.numbers["baseline_acc"]
    unpredicted = dataclasses.replace(samples["digits cnn2d->mlp kd T4 seed0"].results, predictions={})
    assert dx.gate_boundary(unpredicted).status == "not measurable"  # a study recorded without val predictions


def test_gate_10_mastered_classes_from_validation(tiny, samples) -> None:
    assert tiny["copy"].gate(10).status == "passed"
    gate = tiny["one unit"].gate(10)
    assert gate.status == "failed" and gate.numbers["lost"] >= 1
    recorded = samples["digits cnn2d->mlp kd T4 seed0"].results
    unclassed = dataclasses.replace(recorded, metrics={role: {k: v for k, v in metrics.items() if "acc_class" not in k}
                                                       for role, metrics in recorded.metrics.items()})
    assert dx.gate_preservation(unclassed).status == "not measurable"  # recorded before per-class accuracy


# --- detectors --------------------------------------------------------------------------------------
def codes(recorded: Recorded) -> list[str]:
    return [f.code for f in recorded.findings()]


def test_capacity_mismatch_fires_on_a_wide_gap_only(samples, tiny) -> None:
    (finding,) = samples["provoked capacity_mismatch seed0"].findings()
    assert finding.code == "capacity_mismatch" and finding.evidence["gap_ratio"] >= dx.CAPACITY_GAP
    assert codes(samples["digits cnn2d->mlp kd T4 seed0"]) == []
    unaligned = samples["provoked cross_modal_failure - rgb->depth unaligned seed0"].results
    assert dx.capacity_mismatch(unaligned) is None  # far below the baseline, but the gap is 0.99x
    assert dx.capacity_mismatch(tiny["bad teacher"].results) is None


def test_cross_modal_failure_first_with_its_own_fix(samples) -> None:
    (finding,) = samples["provoked cross_modal_failure - rgb->depth unaligned seed0"].findings()
    assert finding.code == "cross_modal_failure" and finding.fix_overrides == ["distill.align=true"]
    assert codes(samples["worked example 2 - rgb->depth aligned seed0"]) == []


def test_a_single_modality_student_at_chance_is_no_cross_modal_failure(tiny) -> None:
    r = tiny["untrained"].results
    chance = 1 / r.num_classes
    assert r.metric("student", dx.VAL) - chance <= dx.RANDOM_MARGIN  # at chance ...
    assert min(r.metric(role, dx.VAL) for role in ("teacher", "baseline")) >= dx.GOOD_FACTOR * chance  # ... alone
    assert dx.cross_modal_failure(r) is None and codes(tiny["untrained"]) == []


def test_progressive_degradation_fires_on_the_chain_that_loses_knowledge(samples) -> None:
    (finding,) = samples["provoked progressive_degradation seed0"].findings()
    assert finding.code == "progressive_degradation" and finding.evidence["stage"] == 1
    assert finding.fix_overrides[0].startswith("distill.assistants=") and "skip_to_teacher" not in str(finding)
    assert codes(samples["worked example 1 - arithmetic transformer chain seed0"]) == []


def test_overconfidence_fires_on_a_student_surer_than_its_teacher(tiny) -> None:
    (finding,) = tiny["one unit"].findings()  # less accurate, lower validation entropy than the teacher
    assert finding.code == "overconfidence" and finding.severity == "critical"
    assert finding.evidence["student_entropy"] < finding.evidence["teacher_entropy"]
    assert dx.overconfidence(tiny["copy"].results) is None


def test_knowledge_confusion_on_the_projects_rule_offers_the_sweep(samples) -> None:
    (finding,) = samples["provoked knowledge_confusion seed1"].findings()  # no sibling at another temperature
    assert finding.code == "knowledge_confusion" and "project's rule" in finding.title
    assert finding.sweep == {"distill.temperature": [1.0, 2.0, 8.0]}
    assert finding.fix_overrides == ["distill.method=multi"]


def test_the_sample_sweep_confirms_knowledge_confusion_by_the_survey_rule(samples) -> None:
    provoked = samples["provoked knowledge_confusion seed0"]
    assert sorted(float(s.params["distill.temperature"]) for s in provoked.siblings) == [1.0, 2.0, 8.0]
    (finding,) = provoked.findings()
    assert finding.severity == "critical" and not finding.sweep
    assert finding.evidence["best_other_temperature_acc"] <= finding.evidence["student_acc"] + dx.NO_GAIN_MARGIN


def test_loaded_samples_are_judged_with_their_temperature_siblings(samples) -> None:
    """Loading judges each sample as it is replayed, and judges again those loaded before a sibling."""
    for name, recorded in samples.items():
        uri, study_id = recorded.where
        stored = json.loads(read_artifact(study_id, "findings.json", uri))
        assert [(f["code"], f["severity"]) for f in stored] == [(f.code, f.severity) for f in recorded.findings()], name


def test_temperature_siblings_are_the_same_study_at_other_temperatures(sweep, samples) -> None:
    for temperature, recorded in sweep.items():
        found = sorted(float(s.params["distill.temperature"]) for s in recorded.siblings)
        assert found == sorted(set(TEMPERATURES) - {temperature})
    named = sorted(s.params["tracking.study_name"] for s in samples["digits cnn2d->mlp kd T4 seed0"].siblings)
    assert named == ["digits cnn2d->mlp kd T2 seed0", "digits cnn2d->mlp kd T8 seed0"]  # not seed 1, not dkd


def test_the_sweep_a_finding_offers_launches_siblings(samples) -> None:
    from dashboard import alerts, data

    recorded = samples["provoked knowledge_confusion seed1"]
    (finding,) = recorded.findings()
    uri, study_id = recorded.where
    study = data.studies(uri).set_index("study_id").loc[study_id]
    configs = alerts.sweep_configs(uri, study, data._finding(finding.to_dict()))
    assert [c["distill"]["temperature"] for c in configs] == finding.sweep["distill.temperature"]
    for config in configs:
        params = validate(config).flat()
        assert comparable(params) == comparable(recorded.results.params)


def test_knowledge_confusion_by_the_survey_temperature_rule(sweep) -> None:
    (finding,) = sweep[4.0].findings()  # two other temperatures, neither does better
    assert finding.code == "knowledge_confusion" and finding.severity == "critical" and not finding.sweep
    assert finding.evidence["best_other_temperature_acc"] <= finding.evidence["student_acc"] + dx.NO_GAIN_MARGIN
    assert finding.evidence["kept_advantage"] < dx.KEPT_ADVANTAGE
    assert dx.knowledge_confusion(sweep[0.1].results) is not None  # the KD-loss evidence alone ...
    assert sweep[0.1].findings() == []  # ... but T=4 does better: the temperature was wrong, not the knowledge


def test_every_finding_on_every_sample_offers_a_fix_its_config_accepts(samples) -> None:
    found = 0
    for name, recorded in samples.items():
        for finding in recorded.findings():
            found += 1
            assert finding.fix_overrides or recorded.config["distill"]["method"] == "multi", (name, finding.code)
            validate(apply_overrides(copy.deepcopy(recorded.config), finding.fix_overrides))
            for key, values in finding.sweep.items():
                for value in values:
                    validate(apply_overrides(copy.deepcopy(recorded.config), [f"{key}={value}"]))
    assert found >= 10


def test_a_new_temperature_diagnoses_its_siblings_again() -> None:
    """The survey's confusion test compares temperatures, so each finished temperature re-judges the others."""
    tracker = MemoryTracker()
    first = Study(tiny_config("distill.temperature=2"), tracker, progress=False).run().study_id
    other = Study(tiny_config("train.seed=1"), tracker, progress=False).run().study_id  # not a sibling: another seed
    for study_id in (first, other):
        tracker.log_bytes(study_id, "findings.json", b'"stale"')
    Study(tiny_config("distill.temperature=8"), tracker, progress=False).run()
    assert isinstance(json.loads(tracker.read_bytes(first, "findings.json")), list)
    assert json.loads(tracker.read_bytes(other, "findings.json")) == "stale"
