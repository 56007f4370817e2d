"""The decision tree: every branch, the capacity thresholds, the policy where rules disagree, to_config."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from kdcore import advisor
from kdcore.advisor import AdviceError, advise
from kdcore.registry import MODELS


def sides(t_params: int | None = None, s_params: int | None = None, t_acc: float | None = None,
          s_acc: float | None = None, **extra) -> dict:
    """A situation given by parameter counts and accuracies only (no model is built)."""
    return {"teacher": {"params": t_params or 1000, "accuracy": t_acc}, "student": {"params": s_params or 1000,
                                                                                   "accuracy": s_acc}, **extra}


# One situation per branch: each must take its step to exactly that branch.
CASES: dict[str, dict] = {
    "peers": sides(several_learners=True),
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
    "explore": sides(stable_domain=False),
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


@pytest.mark.parametrize(("ratio", "count"), [(12, 1), (24, 1), (26, 2), (124, 2), (126, 3), (10**6, 3)])
def test_assistants_keep_every_stage_within_5x(ratio: int, count: int) -> None:
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


@pytest.mark.parametrize("flag", ["rule_based", "real_time", "needs_new_capabilities", "safety_critical",
                                  "interpretability_first"])
def test_not_for_boundaries_warn_and_name_the_alternative(flag: str) -> None:
    advice = advise(sides(**{flag: True}))
    assert len(advice.warnings) == 1 and advice.warnings[0].instead
    assert advise(sides()).warnings == []


def test_a_student_better_alone_than_its_teacher_is_a_boundary_and_other_tasks_too() -> None:
    assert "lacks" in advise(sides(t_acc=0.7, s_acc=0.8)).warnings[0].boundary
    other = advise(CASES["tasks"])
    assert "transfer learning" in other.warnings[0].instead and "relation" in other.knowledge


@pytest.mark.parametrize(("raw", "message"), [
    ({"teacher": {"model": "nope"}, "student": {"params": 10}}, "teacher.model: unknown model 'nope'"),
    ({"teacher": {"model": "mlp", "size": "huge"}, "student": {"params": 10}}, "teacher.size: mlp has no size"),
    ({"teacher": {}, "student": {"params": 10}}, "teacher.model: give a registered model or a parameter count"),
    ({"teacher": {"params": 10}, "student": {"params": 10}, "needs": ["vibes"]}, "needs.0:"),
    ({"teacher": {"params": 10}, "student": {"params": 10, "accuracy": 1.5}}, "student.accuracy:"),
    ({"teacher": {"params": 10}, "student": {"params": 10}, "colour": 1}, "colour: unknown key"),
])
def test_bad_situations_are_one_line_errors_naming_the_field(raw: dict, message: str) -> None:
    with pytest.raises(AdviceError, match=message.replace("(", r"\(")) as err:
        advisor.situation(raw)
    assert "\n" not in str(err.value)


def test_every_model_has_size_presets_and_a_family() -> None:
    for entry in MODELS:
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
