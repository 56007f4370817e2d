"""Online, self and progressive mechanisms: who teaches whom, what each role logs, and what each option changes."""

from __future__ import annotations

import pytest
import torch

from kdcore.data.splits import load_dataset
from kdcore.losses.response import kd_kl
from kdcore.mechanisms.online import MutualLearning
from kdcore.mechanisms.self_distill import MultiExit
from kdcore.methods.base import Batch, TeacherSource, build_method
from kdcore.methods.terms import response_specs
from kdcore.models.base import build_model, count_parameters
from kdcore.study import Study
from kdcore.tracker import MemoryTracker
from tests.helpers import tiny_config

PEER = "distill.peers=[{name: mlp, width: 16, depth: 1}]"


def runs_by_role(tracker: MemoryTracker, study_id: str) -> dict:
    return {r.tags["kd.role"]: r for r in tracker.find_runs({"kd.study_id": study_id})}


def first_batch(splits, n: int = 32) -> Batch:
    return Batch(splits.train.x[:n], splits.train.y[:n], torch.arange(n))


# --- online ----------------------------------------------------------------------------------------
def mutual(*overrides: str) -> tuple[MutualLearning, Batch]:
    cfg = tiny_config("distill.mechanism=online", PEER, *overrides)
    splits = load_dataset(cfg.data)
    student, peer = (build_model(m, splits.input_shape, splits.num_classes)
                     for m in (cfg.student, cfg.distill.peers[0]))
    return MutualLearning(student, {"peer_1": peer}, cfg.distill, response_specs(cfg, "test")), first_batch(splits)


def test_peers_learn_from_each_others_softened_outputs() -> None:
    method, batch = mutual("distill.alpha=0.5", "distill.temperature=2")
    out = method.step(batch)
    assert set(out.losses) == {"ce", "kd", "peer_1/ce", "peer_1/kd"} and set(out.peer_logits) == {"peer_1"}
    student, peer = method.student(batch.x).logits, method.cohort["peer_1"](batch.x).logits
    assert out.losses["kd"].item() == pytest.approx(0.5 * kd_kl(student, peer, 2.0).item(), rel=1e-5)
    assert out.losses["peer_1/kd"].item() == pytest.approx(0.5 * kd_kl(peer, student, 2.0).item(), rel=1e-5)


def test_a_peers_outputs_steer_the_students_gradient_but_its_loss_trains_only_itself() -> None:
    method, batch = mutual()
    method.step(batch).losses["kd"].backward()  # the student's term alone
    assert all(p.grad is None or not p.grad.any() for p in method.cohort.parameters())  # targets are detached
    before = [p.grad.clone() for p in method.student.parameters()]
    method.zero_grad()
    with torch.no_grad():
        for p in method.cohort.parameters():
            p.mul_(3.0)  # a different peer...
    method.step(batch).losses["kd"].backward()
    after = [p.grad for p in method.student.parameters()]
    assert any(not torch.allclose(a, b) for a, b in zip(before, after, strict=True))  # ...moves the student


def test_online_study_logs_each_peer_and_the_best_and_mean() -> None:
    cfg = tiny_config("distill.mechanism=online", "distill.peers=[{name: mlp, width: 16}, {name: mlp, width: 4}]",
                      "train.epochs=2")
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    runs = runs_by_role(tracker, summary.study_id)
    assert {"student", "peer_1", "peer_2", "baseline"} <= set(runs) and "teacher" not in runs
    for role in ("student", "peer_1", "peer_2"):  # each peer has its own curves and losses
        assert [step for step, _ in tracker.metric_history(runs[role].run_id, "val/acc")] == [0, 1]
        assert {"train/loss_ce", "train/loss_kd"} <= set(runs[role].metrics)
    accs = [summary.roles[r]["test/acc"] for r in ("student", "peer_1", "peer_2")]
    assert summary.metrics["study/peer_best_acc"] == max(accs)
    assert summary.metrics["study/peer_mean_acc"] == pytest.approx(sum(accs) / 3)
    assert runs["study"].tags["kd.teacher"] == "mlp-w16+mlp-w4" and "online(3 peers)" in summary.name


# --- self, temporal --------------------------------------------------------------------------------
def test_born_again_generations_each_learn_from_the_one_before() -> None:
    cfg = tiny_config("distill.mechanism=self", "distill.generations=3")
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    runs = runs_by_role(tracker, summary.study_id)
    assert set(summary.roles) == {"baseline", "generation_1", "generation_2", "student"}
    assert [runs[r].tags["kd.generation"] for r in ("generation_1", "generation_2", "student")] == ["1", "2", "3"]
    assert runs["student"].tags["kd.method"] == "kd" and runs["baseline"].tags["kd.method"] == "none"
    assert "born-again(3)" in summary.name and runs["study"].tags["kd.teacher"] == "self"


# --- self, spatial ---------------------------------------------------------------------------------
SPATIAL = ["distill.mechanism=self", "distill.self_kind=spatial", "student.width=16", "student.depth=3"]


def test_every_exit_is_a_model_of_its_own_that_matches_the_multi_exit_pass() -> None:
    cfg = tiny_config(*SPATIAL)
    splits = load_dataset(cfg.data)
    multi = MultiExit(build_model(cfg.student, splits.input_shape, splits.num_classes), splits.input_shape,
                      splits.num_classes, None).eval()
    x = splits.test.x[:16]
    exits = multi.all_exits(x)
    sizes = [count_parameters(multi.exit_net(k)) for k in (1, 2, 3)]
    for k in (1, 2, 3):
        assert torch.allclose(multi.exit_net(k)(x).logits, exits[k - 1], atol=1e-6)
    assert multi.exit_net(3) is multi.base and sizes[0] < sizes[1]  # a shallower exit ships fewer blocks


def test_a_multi_exit_network_builds_its_exits_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exits are built with the network, never per forward pass, and stay outside its module tree: the
    state_dict and the parameters are those of the base network and the heads, each once."""
    from kdcore.mechanisms import self_distill

    built: list[int] = []
    real = self_distill.ExitNet

    def counted(*args: object) -> torch.nn.Module:
        built.append(1)
        return real(*args)

    monkeypatch.setattr(self_distill, "ExitNet", counted)
    cfg = tiny_config(*SPATIAL)
    splits = load_dataset(cfg.data)
    multi = MultiExit(build_model(cfg.student, splits.input_shape, splits.num_classes), splits.input_shape,
                      splits.num_classes, 1)
    assert len(built) == 2  # exits 1 and 2; exit 3 is the base network
    modules, params = [id(m) for m in multi.modules()], count_parameters(multi)
    keys = list(multi.state_dict())
    x = splits.test.x[:8]
    first, second = multi(x).logits, multi(x).logits
    assert torch.equal(first, second) and multi.deployed() is multi.deployed() is multi.exit_net(1)
    assert len(built) == 2, "a forward pass built new modules"
    assert [id(m) for m in multi.modules()] == modules and count_parameters(multi) == params
    assert list(multi.state_dict()) == keys and not any(key.startswith("exits") for key in keys)
    assert count_parameters(multi) == count_parameters(multi.base) + count_parameters(multi.heads)


@pytest.mark.parametrize("exit_", [1, 2, None])
def test_spatial_self_distillation_deploys_the_chosen_exit(exit_: int | None) -> None:
    cfg = tiny_config(*SPATIAL, f"distill.exit={'null' if exit_ is None else exit_}", "train.epochs=2")
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    student = runs_by_role(tracker, summary.study_id)["student"]
    history = {name: dict(tracker.metric_history(student.run_id, name))
               for name in ("exit/test_acc", "exit/params", "exit/latency_ms")}
    assert all(list(steps) == [1, 2, 3] for steps in history.values())  # one point per exit
    chosen = exit_ or 3
    assert summary.roles["student"]["test/acc"] == pytest.approx(history["exit/test_acc"][chosen])
    assert summary.roles["student"]["model/params"] == history["exit/params"][chosen]
    assert {"train/loss_ce", "train/loss_ce_exit1", "train/loss_kd_exit1", "train/loss_kd_exit2"} <= set(
        student.metrics)
    assert student.tags["kd.exit"] == str(exit_ or "deepest")
    # The baseline is the deployed exit trained alone: the same architecture, without the other exits.
    assert summary.roles["baseline"]["model/params"] == summary.roles["student"]["model/params"]


# --- progressive, skip-to-teacher ------------------------------------------------------------------
def test_skip_to_teacher_mixes_the_stage_above_and_the_original_teacher() -> None:
    cfg = tiny_config("distill.temperature=2")
    splits = load_dataset(cfg.data)
    teacher, assistant, student = (build_model(m, splits.input_shape, splits.num_classes)
                                   for m in (cfg.teacher, cfg.teacher, cfg.student))
    batch = first_batch(splits)
    plain = build_method("kd", student, TeacherSource(assistant), cfg.distill)
    skip = build_method("kd", student, TeacherSource(assistant), cfg.distill, more_teachers=[TeacherSource(teacher)])
    logits = student(batch.x).logits
    with torch.no_grad():
        by_assistant, by_teacher = (m.eval()(batch.x).logits for m in (assistant, teacher))
        mixed = 2.0 * (0.5 * (by_assistant / 2).softmax(-1) + 0.5 * (by_teacher / 2).softmax(-1)).log()
    assert plain.step(batch).losses["kd"].item() == pytest.approx(0.9 * kd_kl(logits, by_assistant, 2.0).item(),
                                                                   rel=1e-5)
    skip_kd = skip.step(batch).losses["kd"]
    assert skip_kd.item() == pytest.approx(0.9 * kd_kl(logits, mixed, 2.0).item(), rel=1e-5)
    averaged = 0.9 * (kd_kl(logits, by_assistant, 2.0) + kd_kl(logits, by_teacher, 2.0)) / 2
    assert skip_kd.item() < averaged.item()  # the mixture is nearer the student than the teachers one by one
    # ... yet for KL the student's gradient is the same as averaging the two losses.
    (mine,) = torch.autograd.grad(skip_kd, skip.student.head.weight)
    (theirs,) = torch.autograd.grad(averaged, skip.student.head.weight)
    torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)


def test_skip_to_teacher_changes_what_the_chain_stages_train_on() -> None:
    chain = ["distill.mechanism=progressive", "distill.assistants=[{name: mlp, width: 16, depth: 1}]"]
    losses = {}
    for skip in (False, True):
        tracker = MemoryTracker()
        summary = Study(tiny_config(*chain, f"distill.skip_to_teacher={str(skip).lower()}"), tracker,
                        progress=False).run()
        runs = runs_by_role(tracker, summary.study_id)
        assert runs["student"].tags["kd.skip_to_teacher"] == str(skip).lower()
        losses[skip] = (runs["assistant_1"].metrics["train/loss_kd"], runs["student"].metrics["train/loss_kd"])
    assert losses[False][0] == losses[True][0]  # the first stage's upper stage is the teacher either way
    assert losses[False][1] != losses[True][1]  # the student also learns from the teacher
