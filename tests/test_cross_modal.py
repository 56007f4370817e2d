"""Cross-modal distillation: views, the alignment loss, pairing, the method's terms through the alignment
network, and the failure without alignment."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdcore.config import ConfigError
from kdcore.losses.alignment import alignment_loss
from kdcore.losses.feature import hint_mse
from kdcore.losses.relation import similarity_preserving
from kdcore.mechanisms.cross_modal import CrossModalDistillation, _derangement, transfer_specs
from kdcore.methods.base import Batch, TeacherSource
from kdcore.methods.terms import TERMS, TermSpec
from kdcore.models.base import ViewModel, build_model
from kdcore.study import Study
from kdcore.tracker import MemoryTracker
from tests.helpers import tiny_config

RGBD = ["data.name=rgbd_scenes", "data.n_samples=600", "distill.mechanism=cross_modal", "train.epochs=2",
        "distill.align_epochs=1"]
# Worked example 2 in small: CNNs of different widths (so every alignment network is a real one), the teacher
# trained once for the whole module (its epochs are fixed, so students of any budget reuse it), no student labels.
MULTI = [*RGBD, "data.n_samples=300", "teacher.name=cnn2d", "teacher.width=8", "teacher.depth=2",
         "student.name=cnn2d", "student.width=4", "student.depth=1", "train.teacher_epochs=3", "distill.method=multi",
         "distill.alpha=1"]
FEATURE_TERMS = [name for name, term in TERMS.items() if term.reads == "feature"]  # feature and relation terms


@pytest.fixture(scope="module")
def tracker() -> MemoryTracker:
    """One store for the module's studies, so they share one trained teacher."""
    return MemoryTracker()


def student_run(tracker: MemoryTracker, cfg) -> tuple[str, dict[str, float]]:
    """Run the study; the student's run id and its latest metrics."""
    summary = Study(cfg, tracker, progress=False).run()
    run = tracker.find_runs({"kd.study_id": summary.study_id, "kd.role": "student"})[0]
    return run.run_id, run.metrics


def test_alignment_loss_is_zero_when_aligned_and_trains_only_the_student_side() -> None:
    teacher = torch.randn(6, 10)
    assert alignment_loss(3 * teacher, teacher).item() == pytest.approx(0, abs=1e-6)  # direction, not scale
    assert alignment_loss(-teacher, teacher).item() == pytest.approx(2)
    mapped = torch.randn(6, 10, requires_grad=True)
    target = torch.randn(6, 10, requires_grad=True)
    loss = alignment_loss(mapped, target)
    loss.backward()
    assert 0 < loss.item() < 2 and mapped.grad is not None and target.grad is None
    with pytest.raises(ValueError, match="equal shapes"):
        alignment_loss(torch.randn(2, 3), torch.randn(2, 4))


def test_a_view_model_sees_only_its_channels() -> None:
    cfg = tiny_config(*RGBD)
    depth = build_model(cfg.student, (4, 32, 32), 3, ("depth", (3, 4)))
    assert isinstance(depth, ViewModel) and depth.net.blocks[0][0].in_features == 32 * 32
    x = torch.rand(2, 4, 32, 32)
    other_rgb = x.clone()
    other_rgb[:, :3] = torch.rand(2, 3, 32, 32)
    assert torch.equal(depth(x).logits, depth(other_rgb).logits)
    other_depth = x.clone()
    other_depth[:, 3] = torch.rand(2, 32, 32)
    assert not torch.equal(depth(x).logits, depth(other_depth).logits)


@pytest.mark.parametrize(("override", "message"), [
    ("distill.student_view=rgb", "distill.student_view: the student must see another view"),
    ("distill.teacher_view=infrared", "distill.teacher_view: rgbd_scenes has no view 'infrared'; allowed: rgb, depth"),
    ("distill.align_epochs=2", "distill.align_epochs: alignment takes the first epochs"),
    ("distill.method=none", "distill.method: the cross_modal mechanism transfers loss terms, and method none "
                            "has no terms; allowed: at, dist, dkd, fitnet, kd, multi"),
    ("distill.params={terms: [{term: kd}, {term: attention_pattern}]}",
     "distill.params.terms.1: term attention_pattern needs attention maps"),
    ("distill.params={terms: [{term: sp, student_layer: block1, teacher_layer: penultimate}]}",
     r"distill.params.terms.0: term sp reads the student's block1 \(4, 16, 16\) through an alignment network "
     r"onto the teacher's penultimate \(8,\), which cannot change the rank"),
])
def test_bad_cross_modal_configs_name_the_field(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        tiny_config(*MULTI, override)
    assert len(str(caught.value).splitlines()) == 1


def test_the_mechanism_refuses_attention_terms_itself() -> None:
    """A model that exposed attentions would pass the method's own check; the mechanism still refuses."""
    cfg = tiny_config(*MULTI)
    attention = cfg.model_copy(update={"distill": cfg.distill.model_copy(
        update={"params": {"terms": [{"term": "kd"}, {"term": "attention_pattern"}]}})})
    with pytest.raises(ValueError, match=r"^distill\.params\.terms\.1: term attention_pattern reads attention maps, "
                                         r"which the cross_modal mechanism does not align; allowed terms: kd, "):
        transfer_specs(attention)
    x = torch.rand(8, 4, 32, 32)
    student = build_model(cfg.student, (4, 32, 32), 3, ("depth", (3, 4)))
    teacher = build_model(cfg.teacher, (4, 32, 32), 3, ("rgb", (0, 3)))
    with pytest.raises(ValueError, match="cannot run term attention_pattern"):
        CrossModalDistillation(student, TeacherSource(teacher), cfg.distill, [TermSpec(term="attention_pattern")],
                               x[:4], x)
    assert [s.term for s in transfer_specs(tiny_config(*MULTI, "distill.method=fitnet"))] == ["hint"]


def test_other_mechanisms_and_datasets_refuse_cross_modal() -> None:
    with pytest.raises(ConfigError, match=r"^distill\.align: only the cross_modal mechanism uses it"):
        tiny_config("distill.align=false")
    with pytest.raises(ConfigError, match=r"^data\.name: the cross_modal mechanism needs paired views .* digits"):
        tiny_config("distill.mechanism=cross_modal")


def test_the_teachers_view_is_part_of_its_fingerprint() -> None:
    rgb = tiny_config(*RGBD, "distill.teacher_view=rgb", "distill.student_view=depth")
    depth = tiny_config(*RGBD, "distill.teacher_view=depth", "distill.student_view=rgb")
    assert rgb.teacher_fingerprint("1") != depth.teacher_fingerprint("1")
    assert rgb.teacher_fingerprint("1") == tiny_config(*RGBD).teacher_fingerprint("1")  # rgb is the default


def test_unpaired_partners_move_every_sample() -> None:
    order = _derangement(500, 3)
    assert sorted(order.tolist()) == list(range(500)) and not (order == torch.arange(500)).any()


def test_alignment_phase_then_distillation_phase_on_paired_samples() -> None:
    cfg = tiny_config(*RGBD, "distill.alpha=0.5")
    x = torch.rand(16, 4, 32, 32)
    student = build_model(cfg.student, (4, 32, 32), 3, ("depth", (3, 4)))
    teacher = build_model(cfg.teacher, (4, 32, 32), 3, ("rgb", (0, 3)))
    method = CrossModalDistillation(student, TeacherSource(teacher), cfg.distill, [], x[:4], x)
    batch = Batch(x[:8], torch.zeros(8, dtype=torch.long), torch.arange(8))
    method.begin_epoch(0)
    assert set(method.step(batch).losses) == {"align"}
    method.begin_epoch(1)
    assert set(method.step(batch).losses) == {"align", "ce"}
    assert torch.equal(method.partners, torch.arange(16))  # paired: each sample with its own teacher outputs


class Untouchable:
    """Training inputs that must not be read (a cached teacher needs only the partners' positions)."""

    def __getitem__(self, index: object) -> torch.Tensor:
        raise AssertionError("the partners' inputs were gathered for a cached teacher")


@pytest.mark.parametrize("align", [True, False])
def test_partners_inputs_are_gathered_only_for_a_live_teacher_and_never_copied_to_the_device(align: bool) -> None:
    """The method holds no device copy of the training set (the engine has one): its inputs stay where the dataset
    keeps them, and are read only when the teacher runs live; cached and live outputs of the partners agree."""
    cfg = tiny_config(*MULTI, f"distill.align={align}")
    torch.manual_seed(0)
    x, y = torch.rand(16, 4, 32, 32), torch.randint(0, 3, (16,))
    student = build_model(cfg.student, (4, 32, 32), 3, ("depth", (3, 4)))
    teacher = build_model(cfg.teacher, (4, 32, 32), 3, ("rgb", (0, 3)))
    specs = [TermSpec(term="hint"), TermSpec(term="kd")]
    live = CrossModalDistillation(student, TeacherSource(teacher), cfg.distill, specs, x[:4], x)
    assert "train_x" not in dict(live.named_buffers())
    moved = CrossModalDistillation(build_model(cfg.student, (4, 32, 32), 3, ("depth", (3, 4))),
                                   TeacherSource(teacher), cfg.distill, specs, x[:4], x).to(torch.device("meta"))
    assert moved.train_x is x and moved.partners.is_meta  # the positions move with the method, the inputs stay
    index = torch.tensor([3, 0, 7, 5])
    batch = Batch(x[index], y[index], index, index.clone())
    keys = live.teacher_keys()
    partner = live.partner_batch(batch, keys)
    assert torch.equal(partner.x, x[live.partners[index]]) and torch.equal(partner.host_index, live.partners[index])

    source = TeacherSource(teacher, cache={key: value for key, value in TeacherSource(teacher).outputs(
        Batch(x, y, torch.arange(16)), keys).items()})
    cached = CrossModalDistillation(student, source, cfg.distill, specs, x[:4], x)
    cached.load_state_dict(live.state_dict())  # the same alignment networks
    cached.train_x = Untouchable()
    cached.begin_epoch(1)
    live.begin_epoch(1)
    with torch.no_grad():
        from_cache, from_live = cached.step(batch).losses, live.step(batch).losses
    assert from_cache.keys() == from_live.keys()
    for name in from_live:
        torch.testing.assert_close(from_cache[name], from_live[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("method", [["distill.method=kd"], [
    "distill.method=multi", "distill.params={terms: [{term: kd}, {term: hint}, {term: rkd_distance}]}"]])
def test_without_alignment_a_label_free_student_fails_and_the_detector_fires(tracker: MemoryTracker,
                                                                             method: list[str]) -> None:
    """Also with feature and relation terms: plain adapters on mismatched samples carry no knowledge."""
    cfg = tiny_config(*RGBD, "data.name=rgbd_scenes_nearest", "data.n_samples=1000", "distill.align=false",
                      "distill.alpha=1", "train.epochs=4", "teacher.width=64", "student.width=32",
                      *method)  # a teacher, and a baseline on labelled depth, well above chance
    summary = Study(cfg, tracker, progress=False).run()
    student = tracker.find_runs({"kd.study_id": summary.study_id, "kd.role": "student"})[0]
    assert student.tags["kd.view"] == "depth" and student.tags["kd.teacher_view"] == "rgb"
    assert "train/loss_align" not in student.metrics
    assert "cross_modal_failure" in {f.code for f in summary.findings}
    assert "unaligned" in summary.name


@pytest.mark.parametrize("align", [True, False])
def test_terms_read_the_mapped_student_feature_and_the_partners_teacher_feature(align: bool) -> None:
    """After alignment: alpha * weight * term(map(student feature), teacher feature of the partner), and the
    label loss with label smoothing; unaligned, the same terms through plain adapters on mismatched partners."""
    cfg = tiny_config(*MULTI, "distill.alpha=0.5", "distill.label_smoothing=0.2", f"distill.align={align}")
    torch.manual_seed(0)
    x, y = torch.rand(16, 4, 32, 32), torch.randint(0, 3, (16,))
    student = build_model(cfg.student, (4, 32, 32), 3, ("depth", (3, 4)))
    teacher = build_model(cfg.teacher, (4, 32, 32), 3, ("rgb", (0, 3))).eval()
    specs = [TermSpec(term="hint", weight=3.0), TermSpec(term="sp", weight=2.0, student_layer="last")]
    method = CrossModalDistillation(student, TeacherSource(teacher), cfg.distill, specs, x[:4], x).eval()
    assert method.teacher_keys() == {"logits", "penultimate", "block2"}  # what the study caches
    method.begin_epoch(1)
    batch = Batch(x[:8], y[:8], torch.arange(8))
    losses = method.step(batch).losses
    assert set(losses) == ({"align", "ce", "hint", "sp"} if align else {"ce", "hint", "sp"})
    (losses["hint"] + losses["sp"]).backward()  # the terms train the student's encoder and the maps
    weights = [p for p in [*student.net.blocks.parameters(), *method.maps.parameters()] if p.dim() > 1]
    assert weights and all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)
    partners = torch.arange(16) if align else _derangement(16, 7919)
    assert torch.equal(method.partners, partners)
    with torch.no_grad():
        own, paired = student(x[:8]), teacher(x[partners[:8]])
        vector = method.maps["penultimate>penultimate"](own.features["penultimate"])  # (8, 8)
        spatial = method.maps["block1>block2"](own.features["block1"])  # (8, 8, 8, 8)
        t_vector, t_spatial = paired.features["penultimate"], paired.features["block2"]
        hint, sp = hint_mse(vector, t_vector), similarity_preserving(spatial, t_spatial)
        ce = F.cross_entropy(own.logits, y[:8], label_smoothing=0.2)
        alignment = (alignment_loss(vector, t_vector) + alignment_loss(spatial, t_spatial)) / 2
    assert losses["hint"].item() == pytest.approx(0.5 * 3.0 * hint.item(), rel=1e-5)
    assert losses["sp"].item() == pytest.approx(0.5 * 2.0 * sp.item(), rel=1e-5)
    assert losses["ce"].item() == pytest.approx(0.5 * ce.item(), rel=1e-5)
    if align:  # every pair a term reads is aligned too, beside the penultimate features
        assert losses["align"].item() == pytest.approx(0.5 * alignment.item(), rel=1e-5)
    assert not isinstance(method.maps["block1>block2"], torch.nn.Identity)  # a learned map, 4 -> 8 channels


def test_multi_level_cross_modal_study_logs_each_term_and_they_fall(tracker: MemoryTracker) -> None:
    """Worked example 2 as advised: kd + hint + rkd_distance through the alignment network on paired scenes."""
    cfg = tiny_config(*MULTI, "train.epochs=4", "distill.params={terms: [{term: kd}, {term: hint}, "
                                                "{term: rkd_distance}]}")
    run_id, metrics = student_run(tracker, cfg)
    assert {"train/loss_align", "train/loss_kd", "train/loss_hint", "train/loss_rkd_distance"} <= set(metrics)
    assert len(tracker.metric_history(run_id, "train/loss_align")) == 4  # aligned through both phases
    for term in ("kd", "hint", "rkd_distance", "align"):
        values = [value for _, value in tracker.metric_history(run_id, f"train/loss_{term}")]
        assert values[-1] < values[0], (term, values)
    assert len(tracker.metric_history(run_id, "train/loss_hint")) == 3  # distillation epochs only


@pytest.mark.parametrize("term", FEATURE_TERMS)
def test_each_feature_and_relation_term_distils_across_modalities(tracker: MemoryTracker, term: str) -> None:
    layer = ", student_layer: last" if TERMS[term].spatial else ""  # at reads an aligned spatial map
    cfg = tiny_config(*MULTI, "train.epochs=2", f"distill.params={{terms: [{{term: {term}{layer}}}]}}")
    run_id, metrics = student_run(tracker, cfg)
    assert len(tracker.metric_history(run_id, f"train/loss_{term}")) == 1  # one distillation epoch
    assert torch.isfinite(torch.tensor(metrics[f"train/loss_{term}"])) and metrics[f"train/loss_{term}"] > 0


def test_unaligned_feature_terms_learn_through_a_plain_adapter(tracker: MemoryTracker) -> None:
    cfg = tiny_config(*MULTI, "distill.align=false", "train.epochs=2",
                      "distill.params={terms: [{term: kd}, {term: hint}, {term: rkd_distance}]}")
    run_id, metrics = student_run(tracker, cfg)
    assert "train/loss_align" not in metrics
    assert len(tracker.metric_history(run_id, "train/loss_hint")) == 2  # no alignment phase
    assert tracker.get_run(run_id).tags["kd.align"] == "false"
