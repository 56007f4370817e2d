"""The training loop's device path: no host read per step (the non-finite check included), the batch order moved
once per epoch, channels_last, torch.compile, and the config fields that steer them, which stay out of the
fingerprints when they cannot change the weights. Tests marked ``cuda`` run where torch sees a GPU."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pytest
import torch

from kdcore import engine, targets
from kdcore.config import TrainConfig
from kdcore.data.splits import DatasetSplits, Split, load_dataset
from kdcore.engine import (
    EpochReport,
    NonFiniteLossError,
    batch_order,
    channels_last,
    compile_problem,
    device_batches,
    fit,
)
from kdcore.methods.base import Batch, Method, StepOutput, TeacherSource, build_method
from kdcore.models.base import build_model
from kdcore.siblings import SEED, comparable
from kdcore.study import CACHE_TAG, Study
from kdcore.tracker import MemoryTracker
from tests.helpers import tiny_config

CPU = torch.device("cpu")
CNN = ["teacher.name=cnn2d", "student.name=cnn2d", "teacher.width=8", "student.width=4"]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")


def small_splits(n: int = 128, features: int = 64) -> DatasetSplits:
    """``n`` random training rows and 64 validation rows of ``features`` numbers, 10 classes."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n + 64, features, generator=g), torch.randint(0, 10, (n + 64,), generator=g)
    train, val = Split(x[:n], y[:n]), Split(x[n:], y[n:])
    return DatasetSplits("small", train, val, val, val, num_classes=10, input_shape=(features,), shift="none")


def live_teacher(cfg: Any) -> TeacherSource:
    return TeacherSource(build_model(cfg.teacher, (64,), 10))


def baseline(cfg: Any, splits: DatasetSplits, seed: int = 0) -> Method:
    torch.manual_seed(seed)
    model = build_model(cfg.student, splits.input_shape, splits.num_classes)
    return build_method("none", model, None, cfg.distill.for_plain_labels())


# --- non-finite losses: flagged on the device, raised at the epoch's end ---------------------------------------
class Spiking(Method):
    """Cross-entropy plus a ``spike`` term that is 0, except on one batch of one epoch where it is ``value``."""

    needs_teacher: ClassVar[bool] = False

    def __init__(self, student: torch.nn.Module, cfg: Any, epoch: int, batch: int, value: float) -> None:
        super().__init__(student, None, cfg)
        self.at, self.value, self.epoch, self.calls = (epoch, batch), value, -1, 0

    def begin_epoch(self, epoch: int) -> None:
        self.epoch, self.calls = epoch, 0

    def step(self, batch: Batch) -> StepOutput:
        out = self.student(batch.x)
        spike = out.logits.mean() * 0
        if (self.epoch, self.calls) == self.at:
            # inf leaves the gradient finite; NaN flows into the weights, and from them into every later loss
            spike = spike + self.value if math.isinf(self.value) else out.logits.mean() * self.value
        self.calls += 1
        return StepOutput(out.logits, {"ce": targets.cross_entropy(out.logits, batch.y), "spike": spike})


@pytest.mark.parametrize(("value", "became"), [(float("inf"), "inf"), (float("nan"), "nan")])
def test_a_non_finite_term_is_named_with_its_epoch_after_the_epoch(value: float, became: str) -> None:
    """The term that went non-finite first is named, with the epoch and the advice; a NaN that then spreads
    through the weights into the other terms is not blamed on them. The epoch before it reported normally."""
    cfg = tiny_config()
    splits = small_splits(n=256)
    method = Spiking(build_model(cfg.student, (64,), 10), cfg.distill, epoch=1, batch=2, value=value)
    reports: list[EpochReport] = []
    with pytest.raises(NonFiniteLossError) as err:
        fit(method, splits, cfg.train, role="student", epochs=3, device=CPU, callbacks=[reports.append],
            progress=False)
    assert str(err.value) == (f"student: loss spike became {became} in epoch 2; try a lower train.lr (now 0.001) "
                              "or distill.temperature")
    assert [r.epoch for r in reports] == [0]  # the broken epoch is never reported, nor checkpointed


def test_an_overflowing_total_is_named_total() -> None:
    flags = engine.NonFinite(CPU)
    flags.update(torch.tensor([3e38, 3e38]), torch.tensor([3e38, 3e38]).sum())
    read = flags.packed(2).tolist()
    assert str(engine.NonFinite.error(read, ["ce", "kd"], "student", 0, 0.1)).startswith(
        "student: loss total became inf in epoch 1")
    clean = engine.NonFinite(CPU)
    clean.update(torch.tensor([1.0, 2.0]), torch.tensor(3.0))
    assert engine.NonFinite.error(clean.packed(2).tolist(), ["ce", "kd"], "student", 0, 0.1) is None


def count_host_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts every read of a tensor's value into Python (each one waits for the device)."""
    counts = {"reads": 0}
    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        real = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            counts["reads"] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


@pytest.mark.parametrize("method", ["none", "kd"])
def test_a_training_step_reads_nothing_back_from_the_device(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """The host reads per epoch are the same for 4 batches as for 16: none of them is per step."""
    cfg = tiny_config()
    splits = small_splits(n=256)
    reads = []
    for batch_size in (64, 16):
        train = cfg.train.model_copy(update={"batch_size": batch_size})
        torch.manual_seed(0)
        student = build_model(cfg.student, (64,), 10)
        teacher = live_teacher(cfg) if method == "kd" else None
        distiller = build_method(method, student, teacher, cfg.distill)
        counts = count_host_reads(monkeypatch)
        fit(distiller, splits, train, role="student", epochs=1, device=CPU, progress=False)
        monkeypatch.undo()
        reads.append(counts["reads"])
    assert reads[0] == reads[1], f"host reads per epoch: {reads[0]} with 4 batches, {reads[1]} with 16"


# --- the batch order ---------------------------------------------------------------------------------------
def test_the_epochs_order_goes_to_the_device_whole_and_keeps_its_cpu_positions() -> None:
    """Every step gets its positions on the device and the same positions on the CPU, in the seeded order."""
    cfg = tiny_config()
    splits = small_splits(n=203)  # 203 = 3 * 64 + 11: a short last batch
    host = batch_order(203, 64, 0, 0)
    assert [torch.equal(a, b) for a, b in zip(device_batches(host, CPU), host, strict=True)] == [True] * 4
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    method = baseline(cfg, splits)
    real = method.step

    def spy(batch: Batch) -> StepOutput:
        seen.append((batch.index, batch.host_index))
        return real(batch)

    method.step = spy  # type: ignore[method-assign]
    fit(method, splits, cfg.train, role="baseline", epochs=1, device=CPU, progress=False)
    assert torch.equal(torch.cat([index for index, _ in seen]), torch.cat(host))
    assert all(torch.equal(index, cpu) and cpu.device == CPU for index, cpu in seen)


# --- channels_last and torch.compile -----------------------------------------------------------------------
def test_channels_last_is_for_images_on_cuda_unless_set() -> None:
    gpu, image, table = torch.device("cuda"), (8, 3, 32, 32), (8, 64)
    assert channels_last(None, gpu, image) and not channels_last(None, CPU, image)
    assert not channels_last(None, gpu, table) and not channels_last(True, gpu, table)
    assert channels_last(True, CPU, image) and not channels_last(False, gpu, image)


def test_channels_last_trains_the_same_cnn_in_the_other_memory_format() -> None:
    cfg = tiny_config(*CNN, "student.depth=2", "train.channels_last=true")  # a second conv: 4 input channels
    splits = load_dataset(cfg.data)
    formats: list[bool] = []
    method = baseline(cfg, splits)
    real = method.step

    def spy(batch: Batch) -> StepOutput:
        formats.append(batch.x.is_contiguous(memory_format=torch.channels_last))
        return real(batch)

    method.step = spy  # type: ignore[method-assign]
    fit(method, splits, cfg.train, role="baseline", epochs=1, device=CPU, progress=False)
    assert formats and all(formats)
    convs = [p for p in method.student.parameters() if p.dim() == 4 and p.shape[1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                         for p in convs)
    plain = baseline(cfg, splits)
    fit(plain, splits, tiny_config(*CNN, "student.depth=2").train, role="baseline", epochs=1, device=CPU,
        progress=False)
    for (key, ours), theirs in zip(method.student.state_dict().items(), plain.student.state_dict().values(),
                                   strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5, msg=key)


def test_compile_without_a_compiler_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "compile_problem", lambda device: "no C++ compiler here")
    cfg = tiny_config("train.compile=true")
    with pytest.raises(ValueError, match=r"^train.compile: no C\+\+ compiler here; or set train.compile=false$"):
        fit(baseline(cfg, small_splits()), small_splits(), cfg.train, role="baseline", epochs=1, device=CPU,
            progress=False)


@pytest.mark.skipif(bool(compile_problem(CPU)), reason=compile_problem(CPU) or "compiles")
def test_compiled_training_matches_eager_and_leaves_the_plain_forward() -> None:
    """One epoch of a tiny MLP under torch.compile: the same weights as eager (to rounding), the state_dict keys
    unchanged, and the plain forward back afterwards (evaluation and latency measure the deployed model)."""
    cfg = tiny_config("train.compile=true")
    splits = small_splits()
    compiled, eager = baseline(cfg, splits), baseline(cfg, splits)
    keys = list(compiled.student.state_dict())
    during: list[bool] = []
    real = compiled.step

    def spy(batch: Batch) -> StepOutput:
        during.append(vars(compiled.student).get("forward") is vars(compiled.student).get("_compiled_forward"))
        return real(batch)

    compiled.step = spy  # type: ignore[method-assign]
    fit(compiled, splits, cfg.train, role="baseline", epochs=1, device=CPU, progress=False)
    assert during and all(during), "the student trained with its plain forward"
    fit(eager, splits, tiny_config().train, role="baseline", epochs=1, device=CPU, progress=False)
    assert "_compiled_forward" in vars(compiled.student) and "forward" not in vars(compiled.student)
    assert list(compiled.student.state_dict()) == keys
    for key, value in eager.student.state_dict().items():
        torch.testing.assert_close(compiled.student.state_dict()[key], value, rtol=1e-4, atol=1e-5, msg=key)


# --- the config fields and what they leave alone -------------------------------------------------------------
def test_the_new_training_fields_default_and_refuse_bad_values_in_one_line() -> None:
    from kdcore.config import ConfigError

    train = tiny_config().train
    assert (train.compile, train.channels_last, train.checkpoint_every_s, train.checkpoint_every_epochs,
            train.cache_gib) == (False, None, 60.0, None, 1.0)
    for override, message in [
        ("train.cache_gib=-1", "train.cache_gib: Input should be greater than or equal to 0 (got -1)"),
        ("train.checkpoint_every_s=-5", "train.checkpoint_every_s: Input should be greater than or equal to 0"),
        ("train.checkpoint_every_epochs=0", "train.checkpoint_every_epochs: Input should be greater than or equal "
                                            "to 1 (got 0)"),
        ("train.channels_last=2", "train.channels_last: Input should be true or false, not a number (got 2)"),
        ("train.compile=maybe", "train.compile: Input should be a valid boolean"),
    ]:
        with pytest.raises(ConfigError) as err:
            tiny_config(override)
        assert str(err.value).startswith(message) and "\n" not in str(err.value)


# Fingerprints of version "0.1.0" made before these fields existed: teachers and baselines trained then must
# still be found and reused.
BEFORE = {(): ("2d65897cd8ee55f8", "34655adde90f3393"), ("train.device=auto",): ("f67b4c2a6d18eb8e",
                                                                                "5abb8850b78e0de6"),
          tuple(CNN): ("ceefd18898913435", "978a7bc9f16ba0ed")}


@pytest.mark.parametrize("overrides", list(BEFORE))
def test_fingerprints_made_before_the_new_fields_are_unchanged(overrides: tuple[str, ...]) -> None:
    cfg = tiny_config(*overrides)
    assert (cfg.teacher_fingerprint("0.1.0"), cfg.baseline_fingerprint("0.1.0")) == BEFORE[overrides]
    runtime = tiny_config(*overrides, "train.cache_gib=0", "train.checkpoint_every_s=0",
                          "train.checkpoint_every_epochs=3")
    assert (runtime.teacher_fingerprint("0.1.0"), runtime.baseline_fingerprint("0.1.0")) == BEFORE[overrides]


@pytest.mark.parametrize(("device", "override", "changes"), [
    ("cpu", "train.compile=true", True), ("cpu", "train.channels_last=true", True),
    ("cpu", "train.channels_last=false", False),  # off is what empty means on the CPU
    ("auto", "train.channels_last=false", True),  # but not where auto may land on a GPU
])
def test_fields_that_may_change_the_numbers_change_the_fingerprint_when_set(device: str, override: str,
                                                                            changes: bool) -> None:
    default, changed = tiny_config(f"train.device={device}"), tiny_config(f"train.device={device}", override)
    assert (changed.teacher_fingerprint("v") != default.teacher_fingerprint("v")) is changes
    assert (changed.baseline_fingerprint("v") != default.baseline_fingerprint("v")) is changes


def test_runtime_fields_do_not_part_siblings_but_numeric_ones_do() -> None:
    """Two seeds of one study are siblings whatever their checkpoint cadence or cache cap."""
    base = comparable(tiny_config().flat(), (SEED,))
    assert set(TrainConfig.RUNTIME) == {"checkpoint_every_s", "checkpoint_every_epochs", "cache_gib"}
    other = tiny_config("train.seed=1", "train.cache_gib=0", "train.checkpoint_every_s=5",
                        "train.checkpoint_every_epochs=2")
    assert comparable(other.flat(), (SEED,)) == base
    assert comparable(tiny_config("train.seed=1", "train.compile=true").flat(), (SEED,)) != base


# --- on a GPU ---------------------------------------------------------------------------------------------
@cuda
def test_on_cuda_a_step_never_waits_for_the_device() -> None:
    """With CUDA's sync debugging on, an epoch of 4 batches and one of 16 wait for the device equally often."""
    import warnings

    cfg = tiny_config("train.device=cuda")
    splits = small_splits(n=256)
    gpu = torch.device("cuda")
    counts = []
    for batch_size in (64, 16):
        train = cfg.train.model_copy(update={"batch_size": batch_size})
        method = build_method("kd", build_model(cfg.student, (64,), 10), live_teacher(cfg), cfg.distill)
        method.teacher.model.to(gpu)
        fit(method, splits, train, role="student", epochs=1, device=gpu, progress=False)  # warm-up
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit(method, splits, train, role="student", epochs=1, device=gpu, progress=False)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchronizing" in str(w.message) for w in caught))
    assert counts[0] == counts[1], f"device waits per epoch: {counts[0]} with 4 batches, {counts[1]} with 16"


@cuda
def test_on_cuda_the_cache_lives_on_the_gpu_or_in_pinned_cpu_memory_with_the_same_student(
        monkeypatch: pytest.MonkeyPatch) -> None:
    runs = {}
    for share in (engine.DEVICE_SHARE, 0.0):
        monkeypatch.setattr(engine, "DEVICE_SHARE", share)
        tracker = MemoryTracker()
        study = Study(tiny_config("train.device=cuda", "train.epochs=2"), tracker, progress=False)
        summary = study.run()
        runs[share] = (summary.teacher_cache, study.roles["student"].model.state_dict())
        student = tracker.find_runs({"kd.study_id": summary.study_id, "kd.role": "student"})[0]
        assert student.tags[CACHE_TAG] == summary.teacher_cache
    (on_gpu, a), (on_cpu, b) = runs.values()
    assert on_gpu.startswith("device (cuda") and on_cpu.startswith("cpu (")
    assert all(torch.equal(a[key], b[key]) for key in a)


@cuda
def test_on_cuda_images_train_channels_last_by_default_and_compile_runs() -> None:
    cfg = tiny_config(*CNN, "student.depth=2", "train.device=cuda")
    splits = load_dataset(cfg.data)
    method = baseline(cfg, splits)
    fit(method, splits, cfg.train, role="baseline", epochs=1, device=torch.device("cuda"), progress=False)
    convs = [p for p in method.student.parameters() if p.dim() == 4 and p.shape[1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    if not compile_problem(torch.device("cuda")):
        compiled = tiny_config(*CNN, "student.depth=2", "train.device=cuda", "train.compile=true")
        method = baseline(compiled, splits)
        result = fit(method, splits, compiled.train, role="baseline", epochs=1, device=torch.device("cuda"),
                     progress=False)
        assert result.best_val_acc > 0 and "forward" not in vars(method.student)
