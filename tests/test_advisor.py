"""The decision tree: every branch, the capacity thresholds, the policy where rules disagree, to_config."""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import pytest

from kdcore import advisor
from kdcore.advisor import AdviceError, RecordedAdvice, advise, parse_rationale, recorded_flags, situation_from_flags
from kdcore.cli import main
from kdcore.config import BOUNDARY_NAMES, load_config
from kdcore.diagnostics import StudyResults, measured_situation
from kdcore.registry import MODELS
from kdcore.samples import read_sample
from kdcore.study import Study
from kdcore.tracker import MemoryTracker

ROOT = Path(__file__).resolve().parents[1]


def sides(t_params: int | None = None, s_params: int | None = None, t_acc: float | None = None,
          s_acc: float | None = None, **extra) -> dict:
    """A situation given by parameter counts and accuracies only (no model is built)."""
    return {"teacher": {"params": t_params or 1000, "accuracy": t_acc}, "student": {"params": s_params or 1000,
                                                                                   "accuracy": s_acc}, **extra}


# One situation per branch: each must take its step to exactly that branch.
CASES: dict[str, dict] = {
    "peers": sides(several_learners=True, proven_teacher=False),
    "perf_similar": sides(t_acc=0.9, s_acc=0.85),
    "perf_direct": sides(t_acc=0.9, s_acc=0.7),
    "perf_one_assistant": sides(t_acc=0.9, s_acc=0.5),
    "perf_progressive": sides(t_acc=0.9, s_acc=0.2),
    "params_small": sides(2000, 1000),
    "params_large": sides(10_000, 1000),
    "params_band": sides(5000, 1000),
    "unassessed": {"teacher": {"model": "cnn1d"}, "student": {"model": "cnn2d"}},  # no dataset fits both
    "multi": sides(needs=["decisions", "structure"]),
    "decisions": sides(needs=["decisions"]),
    "patterns": sides(needs=["patterns"]),
    "structure": sides(needs=["structure"]),
    "cross_modal": {"teacher": {"params": 1000, "modality": "rgb"}, "student": {"params": 500, "modality": "depth"}},
    "no_teacher": sides(proven_teacher=False),
    "explore": sides(several_learners=True, stable_domain=False),
    "chain": sides(20_000, 1000),
    "offline": sides(1500, 1000),
    "modalities": {"teacher": {"params": 1000, "modality": "rgb"}, "student": {"params": 500, "modality": "depth"}},
    "tasks": {"teacher": {"params": 1000, "task": "detection"}, "student": {"params": 500}},
    "architectures": {"dataset": "digits", "teacher": {"model": "cnn2d"}, "student": {"model": "mlp"}},
    "same": {"dataset": "digits", "teacher": {"model": "mlp", "size": "large"}, "student": {"model": "mlp"}},
}


def test_every_branch_of_the_tree_has_a_case() -> None:
    assert set(CASES) == {b.id for b in advisor.TREE}


@pytest.mark.parametrize("branch", list(CASES))
def test_each_branch_fires_for_its_situation(branch: str) -> None:
    step = next(b.step for b in advisor.TREE if b.id == branch)
    advice = advise(CASES[branch])
    fired = {p.step: p for p in advice.path}
    assert fired[step].branch == branch
    assert [p.step for p in advice.path] == [1, 2, 3, 4] and all(p.rule for p in advice.path)


@pytest.mark.parametrize(("ratio", "gap"), [
    (1.0999, "similar"), (1.1, "direct"), (1.4999, "direct"), (1.5, "one_assistant"), (2.9999, "one_assistant"),
    (3.0, "progressive"), (3.5, "progressive"),
])
def test_performance_ratio_bands(ratio: float, gap: str) -> None:
    assert advise(sides(t_acc=0.9, s_acc=0.9 / ratio)).gap == gap


@pytest.mark.parametrize(("ratio", "gap"), [
    (1.0, "direct"), (2.0, "direct"), (2.01, "undecided"), (9.99, "undecided"), (10.0, "progressive"),
])
def test_parameter_ratio_bands(ratio: float, gap: str) -> None:
    assert advise(sides(round(1000 * ratio), 1000)).gap == gap


def test_performance_decides_when_the_rules_disagree_and_the_advice_says_so() -> None:
    advice = advise(sides(50_000, 1000, t_acc=0.9, s_acc=0.75))  # params 50x: progressive; performance 1.2x
    assert advice.gap == "direct" and advice.mechanism == "offline"
    assert "50.0x" in advice.policy and "performance ratio (1.20x) decides" in advice.policy
    assert advise(sides(1500, 1000, t_acc=0.9, s_acc=0.75)).policy.endswith("the parameter ratio agrees.")


def test_the_undecided_band_is_direct_distillation_with_a_stated_policy() -> None:
    advice = advise(sides(5000, 1000))
    assert advice.mechanism == "offline" and not advice.assistants
    assert "2-10x undecided" in advice.policy and "1.5x" in advice.policy


@pytest.mark.parametrize(("ratio", "count"), [(None, 2), (3, 2), (12, 2), (24, 2), (26, 2), (124, 2), (126, 3),
                                             (10**6, 3)])
def test_multi_step_gaps_get_at_least_two_assistants_and_keep_every_stage_within_5x(ratio: int, count: int) -> None:
    assert advisor.assistant_count("progressive", ratio) == count
    assert advisor.assistant_count("one_assistant", ratio) == 1
    assert advisor.assistant_count("direct", ratio) == 0


def test_assistants_interpolate_the_parameter_count_geometrically() -> None:
    advice = advise({"dataset": "mnist1d", "teacher": {"model": "cnn1d", "size": "large"},
                     "student": {"model": "mlp", "size": "tiny"}})
    t, s = advice.situation.teacher, advice.situation.student
    assert advice.mechanism == "progressive" and len(advice.assistants) == 2
    t_params = advisor.parameters("cnn1d", *t.shape(), "mnist1d")
    s_params = advisor.parameters("mlp", *s.shape(), "mnist1d")
    chain = [t_params, *(a.params for a in advice.assistants), s_params]
    steps = [math.log(a / b) for a, b in pairwise(chain)]
    assert all(a.name == "cnn1d" for a in advice.assistants)
    assert max(steps) / min(steps) < 1.3  # each stage shrinks by about the same factor
    assert "geometric interpolation" in advice.assistant_rule


def test_to_config_runs_progressive_advice_and_records_its_rationale() -> None:
    advice = advise({"dataset": "mnist1d", "teacher": {"model": "cnn1d", "size": "large"},
                     "student": {"model": "mlp", "size": "tiny"}})
    cfg = advice.to_config({"data": {"name": "mnist1d", "n_samples": 2000}, "train": {"epochs": 3}})
    assert cfg.distill.mechanism == "progressive" and len(cfg.distill.assistants) == 2
    assert cfg.data.n_samples == 2000 and cfg.train.epochs == 3  # the base config's other choices stay
    assert cfg.distill.temperature == advice.temperature[2]
    assert cfg.distill.rationale.startswith("Advice: progressive") and "78.8x" in cfg.distill.rationale


@pytest.mark.parametrize(("case", "mechanism"), [("explore", "online"), ("no_teacher", "self")])
def test_to_config_builds_online_and_self_advice(case: str, mechanism: str) -> None:
    advice = advise(CASES[case] | {"dataset": "digits", "teacher": {"model": "mlp", "size": "medium"},
                                   "student": {"model": "mlp", "size": "small"}})
    base = {"distill": {"stage_temperatures": [2.0, 4.0]}}  # a leftover of another mechanism is dropped
    cfg = advice.to_config(base)
    assert advice.mechanism == mechanism and cfg.distill.mechanism == mechanism and not advice.runnable()
    assert cfg.distill.stage_temperatures == []
    if mechanism == "online":  # the situation's other side learns beside the student
        assert [(p.name, p.width, p.depth) for p in cfg.distill.peers] == [("mlp", 64, 2)]
    else:
        assert cfg.distill.self_kind == "temporal" and cfg.distill.generations == 3


@pytest.mark.parametrize(("situation", "message"), [
    (CASES["explore"] | {"dataset": "digits", "teacher": {"model": "mlp"}, "student": {"model": "mlp"},
                         "needs": ["patterns"]},
     "distill.method: the online mechanism exchanges outputs between peers"),
    (CASES["params_small"], "teacher.model: a parameter count cannot be trained"),
    ({"teacher": {"model": "mlp"}, "student": {"model": "mlp", "size": "tiny"}}, "dataset: name a registered"),
])
def test_to_config_says_plainly_what_is_not_built_or_missing(situation: dict, message: str) -> None:
    advice = advise(situation)
    assert message in (advice.runnable() or "")
    with pytest.raises(AdviceError, match=message):
        advice.to_config()


def test_a_student_better_alone_than_its_teacher_is_a_boundary_and_other_tasks_too() -> None:
    better_alone = advise(sides(t_acc=0.7, s_acc=0.8))
    assert better_alone.boundaries == ["needs_new_capabilities"] and "lacks" in better_alone.not_for[0].boundary
    assert advise(sides(t_acc=0.870, s_acc=0.875)).boundaries == []  # within 1%: equal, not better alone
    assert advise(sides(t_acc=0.860, s_acc=0.875)).boundaries == ["needs_new_capabilities"]
    other = advise(CASES["tasks"])
    assert other.boundaries == ["different_tasks"] and "transfer learning" in other.not_for[0].instead.lower()
    assert "relation" in other.knowledge


@pytest.mark.parametrize(("raw", "message"), [
    ({"teacher": {"model": "nope"}, "student": {"params": 10}}, "teacher.model: unknown model 'nope'"),
    ({"teacher": {"model": "mlp", "size": "huge"}, "student": {"params": 10}}, "teacher.size: mlp has no size"),
    ({"teacher": {}, "student": {"params": 10}}, "teacher.model: give a registered model or a parameter count"),
    ({"teacher": {"model": "import"}, "student": {"params": 10}}, "teacher.path: model import needs one"),
    ({"teacher": {"params": 10}, "student": {"params": 10}, "data": {"name": "csv", "path": "/no.csv"}},
     "data.path: no file or folder '/no.csv'"),
    ({"teacher": {"params": 10}, "student": {"params": 10}, "dataset": "csv"}, "dataset: csv reads your files"),
    ({"teacher": {"params": 10}, "student": {"params": 10}, "needs": ["vibes"]}, "needs.0:"),
    ({"teacher": {"params": 10}, "student": {"params": 10, "accuracy": 1.5}}, "student.accuracy:"),
    ({"teacher": {"params": 10}, "student": {"params": 10}, "colour": 1}, "colour: unknown key"),
])
def test_bad_situations_are_one_line_errors_naming_the_field(raw: dict, message: str) -> None:
    with pytest.raises(AdviceError, match=message.replace("(", r"\(")) as err:
        advisor.situation(raw)
    assert "\n" not in str(err.value)


def test_every_model_has_size_presets_and_a_family() -> None:
    for entry in (e for e in MODELS if not e.meta.get("source")):  # a source's size is the user's model
        assert set(entry.meta["sizes"]) == {"tiny", "small", "medium", "large"}, entry.name
        assert entry.meta["family"], entry.name


def test_the_tree_edges_connect_every_branch_to_its_step() -> None:
    edges = advisor.edges()
    assert ("situation", "step1") in edges and ("step3", "step4") in edges
    assert {child for _, child in edges} >= {b.id for b in advisor.TREE}


@pytest.mark.parametrize(("needs", "method"), [(["structure"], "rkd"), (["patterns"], "fitnet"),
                                                (["decisions", "structure"], "multi")])
def test_knowledge_needs_become_runnable_methods(needs: list[str], method: str) -> None:
    cfg = advise({"dataset": "digits", "teacher": {"model": "mlp", "size": "medium"},
                  "student": {"model": "mlp", "size": "small"}, "needs": needs}).to_config()
    assert cfg.distill.method == method and cfg.distill.mechanism == "offline"


# --- NOT-FOR boundaries ----------------------------------------------------------------------------------
DIGITS = {"dataset": "digits", "teacher": {"model": "mlp", "size": "medium"},
          "student": {"model": "mlp", "size": "small"}}
# What makes each boundary apply: situation keys on top of DIGITS, and the kdx advise switches that say the same.
BOUNDARY_CASES: dict[str, tuple[dict, list[str]]] = {
    "rule_based": ({"rule_based": True}, ["--rule-based"]),
    "different_tasks": ({"teacher": {"model": "mlp", "size": "medium", "task": "detection"}},
                        ["--teacher-task", "detection"]),
    "real_time": ({"real_time": True}, ["--real-time"]),
    "needs_new_capabilities": ({"needs_new_capabilities": True}, ["--needs-new-capabilities"]),
    "safety_critical": ({"safety_critical": True}, ["--safety-critical"]),
    "interpretability_first": ({"interpretability_first": True}, ["--interpretability-first"]),
}


def test_the_boundary_table_names_each_config_boundary_once() -> None:
    assert tuple(b.name for b in advisor.NOT_FOR) == BOUNDARY_NAMES == tuple(BOUNDARY_CASES)


@pytest.mark.parametrize("name", BOUNDARY_NAMES)
def test_a_boundary_says_do_not_distill_and_stops_the_config_until_accepted(name: str) -> None:
    advice = advise(DIGITS | BOUNDARY_CASES[name][0])
    assert advice.verdict == "do not distill" and advice.boundaries == [name] and advice.not_for[0].instead
    assert advice.rationale.startswith(f"Do not distill. {advice.not_for[0].boundary} Instead: ")
    message = f"the {name} boundary applies; to distill anyway, pass --accept-boundary {name}"
    assert advice.runnable() == f"do not distill: {message}"
    other = next(n for n in BOUNDARY_NAMES if n != name)
    with pytest.raises(AdviceError, match=f"^advice: do not distill: {message}$"):
        advice.to_config(accept=[other])  # another boundary's acknowledgement does not count
    cfg = advice.to_config(accept=[name, other])
    assert cfg.distill.accepted_boundaries == [name]  # only the one that applies is recorded
    assert f"distilling anyway despite: {name}." in cfg.distill.rationale
    assert parse_rationale(cfg.distill.rationale) == RecordedAdvice(advice.mechanism, recorded_flags(advice.situation),
                                                                    [name], [name])


def test_without_a_boundary_the_verdict_is_distill_and_nothing_is_accepted() -> None:
    advice = advise(DIGITS)
    assert advice.verdict == "distill" and advice.boundaries == []
    assert advice.to_config().distill.accepted_boundaries == []
    with pytest.raises(AdviceError, match=r"^accept: unknown boundary 'speed'; allowed: rule_based, different_tasks"):
        advice.to_config(accept=["speed"])


def test_real_time_means_a_student_faster_than_the_teacher_can_ever_be() -> None:
    boundary = advise(DIGITS | {"real_time": True}).not_for[0]
    assert "faster than the teacher could ever be made" in boundary.boundary
    assert "architecture" in boundary.instead and "does not make a model fast" in boundary.instead


def test_several_boundaries_are_named_together() -> None:
    advice = advise(DIGITS | {"rule_based": True, "safety_critical": True})
    assert advice.boundaries == ["rule_based", "safety_critical"]
    assert advice.runnable(["rule_based"]) == ("do not distill: the safety_critical boundary applies; to distill "
                                               "anyway, pass --accept-boundary safety_critical")
    assert advice.refusal().endswith("--accept-boundary rule_based --accept-boundary safety_critical")


@pytest.mark.parametrize("name", BOUNDARY_NAMES)
def test_kdx_advise_prints_do_not_distill_and_writes_only_with_the_acknowledgement(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["advise", "--dataset", "digits", "--teacher", "mlp:medium", "--student", "mlp:small",
            *BOUNDARY_CASES[name][1], "--write", "advised.yaml"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "verdict         do not distill" in out and f"  {name}: " in out and "    instead: " in out
    assert err == (f"kdx: error: advice: do not distill: the {name} boundary applies; to distill anyway, pass "
                   f"--accept-boundary {name}\n")
    assert not (tmp_path / "advised.yaml").exists()
    assert main([*argv, "--accept-boundary", name]) == 0
    cfg = load_config(tmp_path / "advised.yaml")
    assert cfg.distill.accepted_boundaries == [name]
    recorded = parse_rationale(cfg.distill.rationale)
    assert recorded is not None and recorded.boundaries == recorded.accepted == [name]


# --- step 3: the mechanism ----------------------------------------------------------------------------------
# The digits sample study: teacher 98.5%, the student trained alone 92.2% (1.07x).
DIGITS_STUDY = {"dataset": "digits", "teacher": {"model": "cnn2d", "width": 32, "depth": 2, "accuracy": 0.985},
                "student": {"model": "mlp", "width": 32, "depth": 1, "accuracy": 0.922}}


def test_a_proven_teacher_on_a_stable_domain_stays_offline_and_the_step_1_disagreement_is_shown() -> None:
    advice = advise(DIGITS_STUDY)
    assert advice.gap == "similar" and advice.mechanism == "offline" and advice.verdict == "distill"
    step3 = advice.path[2]
    assert step3.branch == "offline" and "step 1 alone would say collaborative" in step3.detail
    assert "Step 1 alone would say collaborative learning (performance 1.07x, below 1.1x)" in advice.policy
    assert advise(DIGITS_STUDY | {"several_learners": True, "stable_domain": False}).policy.count("Step 1") == 0


@pytest.mark.parametrize(("flags", "mechanism"), [
    ({"several_learners": True}, "offline"),  # several learners beside a proven teacher learn from it
    ({"stable_domain": False}, "offline"),  # a drifting domain alone is no reason to learn together
    ({"several_learners": True, "stable_domain": False}, "online"),
    ({"several_learners": True, "proven_teacher": False}, "online"),
    ({"proven_teacher": False}, "self"),
])
def test_online_needs_several_learners_and_exploration(flags: dict, mechanism: str) -> None:
    assert advise(DIGITS_STUDY | flags).mechanism == mechanism


def test_several_learners_leave_a_wide_gap_to_a_chain() -> None:
    advice = advise(sides(79_000, 1000, several_learners=True))
    assert (advice.gap, advice.mechanism) == ("progressive", "progressive")
    assert "several learners, but a proven teacher on a stable domain" in advice.path[2].detail


# --- the capacity table and the chain ------------------------------------------------------------------------
@pytest.mark.parametrize(("situation", "count"), [
    (sides(20_000, 1000, t_acc=0.9, s_acc=0.45), 1),  # performance 2x: exactly one, even at 20x parameters
    (sides(2_900, 1000, t_acc=0.9, s_acc=0.6), 1),
    (sides(4_000, 1000, t_acc=0.9, s_acc=0.25), 2),  # performance 3.6x at 4x parameters: still multi-step
    (sides(10_000, 1000), 2),  # parameters 10x, accuracies unknown: progressive, so multi-step
    (sides(500_000, 1000), 3),  # 500x: three keep every stage near 5x
])
def test_the_capacity_table_sizes_the_chain(situation: dict, count: int) -> None:
    advice = advise(situation)
    assert advice.mechanism == "progressive" and len(advice.assistants) == count
    assert ("A chain of one assistant: ~" in advice.chain_rule) == (count > 1)


def test_worked_example_1_gets_three_assistants_and_names_the_one_assistant_chain() -> None:
    advice = advise({"teacher": {"params": 175_000_000_000}, "student": {"params": 500_000_000},
                     "needs": ["decisions", "structure"]})
    assert (advice.mechanism, advice.knowledge, advice.method) == ("progressive", ["response", "relation"], "multi")
    assert len(advice.assistants) == 3 and round(advice.parameter_ratio) == 350
    chain = [175_000_000_000, *(a.params for a in advice.assistants), 500_000_000]
    assert all(4.2 < a / b < 4.4 for a, b in pairwise(chain))  # each stage about 350 ** (1/4)
    assert "3 assistants: a gap this wide is multi-step" in advice.chain_rule
    assert "A chain of one assistant: ~9,354,143,467 parameters at the geometric mean, 18.7x per stage." in \
        advice.chain_rule
    assert advice.chain_rule in advice.rationale and len(advice.stage_temperatures) == 4


@pytest.mark.parametrize(("ratio", "temperature"), [(1.2, 4.0), (2.0, 4.0), (4.5, 5.0), (10.0, 6.0), (300.0, 6.0)])
def test_a_stage_temperature_follows_the_stage_gap(ratio: float, temperature: float) -> None:
    assert advisor.stage_temperature(ratio) == temperature


def test_progressive_configs_get_one_temperature_per_stage_from_its_own_gap() -> None:
    advice = advise({"dataset": "mnist1d", "teacher": {"model": "cnn1d", "size": "large"},
                     "student": {"model": "mlp", "size": "small"}})
    t, s = advice.situation.teacher, advice.situation.student
    chain = [advisor.parameters("cnn1d", *t.shape(), "mnist1d"), *(a.params for a in advice.assistants),
             advisor.parameters("mlp", *s.shape(), "mnist1d")]
    cfg = advice.to_config()
    assert len(cfg.distill.stage_temperatures) == len(advice.assistants) + 1 >= 3
    assert cfg.distill.stage_temperatures == [advisor.stage_temperature(a / b) for a, b in pairwise(chain)]
    assert "Temperature per stage: assistant_1 " in cfg.distill.rationale and ", student " in cfg.distill.rationale


# --- multi-level: the terms each knowledge type means -------------------------------------------------------
TINY_TRAIN = {"train": {"epochs": 1, "batch_size": 64, "threads": 1, "device": "cpu"}}
MULTI_PAIRS = {
    "digits-cnn2d-mlp": {"dataset": "digits", "teacher": {"model": "cnn2d", "size": "small"},
                         "student": {"model": "mlp", "size": "tiny"}},
    "mnist1d-cnn1d-mlp": {"dataset": "mnist1d", "teacher": {"model": "cnn1d", "size": "tiny"},
                          "student": {"model": "mlp", "size": "tiny"}},
}
COMBINATIONS = [["decisions", "patterns"], ["decisions", "structure"], ["patterns", "structure"],
                ["decisions", "patterns", "structure"]]
VECTOR_TERMS = {"decisions": "kd", "patterns": "hint", "structure": "rkd_distance"}


def run_student(cfg) -> dict[str, float]:
    """Train the study for real (one epoch) and return the distilled student's logged metrics."""
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    (student,) = tracker.find_runs({"kd.study_id": summary.study_id, "kd.role": "student"})
    return student.metrics


@pytest.mark.parametrize("needs", COMBINATIONS, ids="+".join)
@pytest.mark.parametrize("pair", list(MULTI_PAIRS))
def test_every_multi_level_advice_trains_the_terms_its_knowledge_types_mean(pair: str, needs: list[str]) -> None:
    advice = advise(MULTI_PAIRS[pair] | {"needs": needs})
    small = {"data": {"name": "mnist1d", "n_samples": 600}} if advice.situation.dataset == "mnist1d" else {}
    cfg = advice.to_config(TINY_TRAIN | small)
    terms = [t["term"] for t in cfg.distill.params["terms"]]
    assert cfg.distill.method == "multi" and terms == [VECTOR_TERMS[n] for n in needs]
    metrics = run_student(cfg)
    assert all(math.isfinite(metrics[f"train/loss_{term}"]) for term in terms)


def test_two_spatial_models_transfer_features_as_attention_maps_along_a_chain() -> None:
    advice = advise({"dataset": "digits", "teacher": {"model": "cnn2d", "size": "small"},
                     "student": {"model": "cnn2d", "size": "tiny"}, "needs": ["decisions", "patterns"]})
    cfg = advice.to_config(TINY_TRAIN)
    assert cfg.distill.mechanism == "progressive" and len(cfg.distill.stage_temperatures) == len(advice.assistants) + 1
    assert [t["term"] for t in cfg.distill.params["terms"]] == ["kd", "at"]
    assert math.isfinite(run_student(cfg)["train/loss_at"])


def test_transformer_chains_add_hidden_states_after_the_first_stage() -> None:
    advice = advise({"dataset": "arithmetic", "needs": ["decisions", "structure"],
                     "teacher": {"model": "transformer", "size": "large"}, "student": {"model": "transformer",
                                                                                       "size": "small"}})
    stages = [[t["term"] for t in stage["terms"]] for stage in advice.to_config().distill.stage_params]
    assert stages == [["kd", "attention_pattern"]] + [["kd", "hint", "attention_pattern"]] * len(advice.assistants)


# --- the recorded rationale ----------------------------------------------------------------------------------
ROUND_TRIP = [
    DIGITS, DIGITS_STUDY, *CASES.values(), *(DIGITS | flags for flags, _ in BOUNDARY_CASES.values()),
    sides(needs=["patterns", "structure"], several_learners=True, stable_domain=False, real_time=True,
          safety_critical=True, interpretability_first=True),
    {"teacher": {"params": 10, "task": "odd; task=a+b 100% sure\nnext line", "modality": "rgb"},
     "student": {"params": 5, "task": "b", "modality": "depth"}, "rule_based": True},
    {"teacher": {"params": 175_000_000_000}, "student": {"params": 500_000_000}, "needs": ["decisions", "structure"],
     **{flag: True for flag in advisor.BOUNDARY_FLAGS}},
]


@pytest.mark.parametrize("raw", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
def test_the_rationale_records_what_a_study_cannot_measure_and_reads_it_back(raw: dict) -> None:
    advice = advise(raw)
    assert len(advice.rationale) <= advisor.RATIONALE_LIMIT
    recorded = parse_rationale(advice.rationale)
    assert recorded == RecordedAdvice(advice.mechanism, recorded_flags(advice.situation), advice.boundaries, [])
    assert set(recorded.flags) == set(advisor.RECORDED_FLAGS)
    s = advice.situation
    again = advise(situation_from_flags(recorded.flags, s.teacher, s.student, s.dataset))
    assert (again.mechanism, again.boundaries) == (advice.mechanism, advice.boundaries)


def test_recorded_flags_merge_with_the_sides_a_study_measured() -> None:
    recorded = parse_rationale(advise({"dataset": "rgbd_scenes", "several_learners": True, "stable_domain": False,
                                       "teacher": {"model": "cnn2d", "modality": "rgb", "task": "detection"},
                                       "student": {"model": "cnn2d", "size": "small", "modality": "depth"}}).rationale)
    measured = {"model": "cnn2d", "width": 32, "depth": 2, "accuracy": 0.9}  # what a study logs: no task, no sensor
    again = advise(situation_from_flags(recorded.flags, measured, measured | {"accuracy": 0.8}, "rgbd_scenes"))
    assert (again.situation.teacher.task, again.situation.student.modality) == ("detection", "depth")
    assert again.mechanism == recorded.mechanism == "cross_modal" and again.boundaries == ["different_tasks"]
    assert again.situation.several_learners and not again.situation.stable_domain


def test_a_rationale_too_long_for_the_config_keeps_its_record_whole() -> None:
    advice = advise(sides(needs=["decisions", "patterns", "structure"], **{flag: True for flag in
                                                                         advisor.BOUNDARY_FLAGS},
                          teacher={"params": 10, "task": "x" * 2500}))
    assert len(advice.rationale) == advisor.RATIONALE_LIMIT and "…\nSituation: " in advice.rationale
    assert parse_rationale(advice.rationale).flags["teacher_task"] == "x" * 2500


@pytest.mark.parametrize("text", [None, "", "We chose offline KD because the teacher is good.",
                                  "Situation: mechanism=offline; needs=decisions", "Situation: nonsense"])
def test_free_text_is_not_read_as_a_record(text: str | None) -> None:
    assert parse_rationale(text) is None


def test_the_digits_example_records_what_its_sample_study_is_advised_again() -> None:
    sample, _ = read_sample(ROOT / "sample_runs" / "digits-cnn2d-mlp-kd-t4-seed0.json")
    results = StudyResults({role.tags["kd.role"]: {key: rows[-1][1] for key, rows in role.metrics.items()}
                            for role in sample.roles},
                           sample.study.params | {"kd.knowledge": sample.study.tags["kd.knowledge"]})
    measured = measured_situation(results)
    rationale = load_config(ROOT / "examples" / "digits_kd.yaml").distill.rationale
    recorded = parse_rationale(rationale)
    again = advise(situation_from_flags(recorded.flags, measured.teacher, measured.student, measured.dataset))
    assert recorded.mechanism == again.mechanism == "offline" and recorded.boundaries == again.boundaries == []
    assert recorded.flags == recorded_flags(again.situation)
    assert rationale == advise(DIGITS_STUDY).rationale  # written by the advisor, word for word
