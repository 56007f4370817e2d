"""A model starts from a checkpoint (safetensors or a state dict); a teacher can be used as it is."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from kdcore import cli
from kdcore.config import ConfigError
from kdcore.data.splits import load_dataset
from kdcore.models.base import build_model
from kdcore.registry import DATASETS
from kdcore.study import Study
from kdcore.study_results import study_results
from kdcore.tracker import MemoryTracker
from kdcore.tracking import MlflowTracker, list_studies
from tests.helpers import TINY, tiny_config

TEACHER = ["teacher.name=mlp", "teacher.width=32", "teacher.depth=1"]


def digits_model(width: int = 32, seed: int = 7) -> torch.nn.Module:
    meta = DATASETS.entry("digits").meta
    torch.manual_seed(seed)
    spec = type("Spec", (), {"name": "mlp", "width": width, "depth": 1})()
    return build_model(spec, meta["input_shape"], meta["num_classes"])


def save(model: torch.nn.Module, path: Path) -> Path:
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(path)) if path.suffix == ".safetensors" else torch.save(state, path)
    return path


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_model_starts_from_its_checkpoint_in_either_format(tmp_path: Path, suffix: str) -> None:
    source = digits_model()
    cfg = tiny_config(*TEACHER, f"teacher.checkpoint={save(source, tmp_path / ('w' + suffix))}")
    loaded = build_model(cfg.teacher, DATASETS.entry("digits").meta["input_shape"], 10)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_a_teacher_used_as_it_is_is_evaluated_never_trained(tmp_path: Path) -> None:
    source = digits_model().eval()
    path = save(source, tmp_path / "teacher.safetensors")
    cfg = tiny_config(*TEACHER, f"teacher.checkpoint={path}", "teacher.train=false")
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    teacher = next(r for r in tracker.find_runs({"kd.study_id": summary.study_id}) if r.tags["kd.role"] == "teacher")
    assert teacher.tags["kd.weights"] == "checkpoint, as is"
    assert "train/loss" not in teacher.metrics  # no epoch ran
    test = load_dataset(cfg.data).test
    with torch.no_grad():
        accuracy = (source(test.x).logits.argmax(1) == test.y).float().mean().item()
    assert study_results(tracker, summary.study_id).metric("teacher", "test/acc") == pytest.approx(accuracy)


def test_a_trained_teacher_from_a_checkpoint_is_reused_only_with_the_same_weights(tmp_path: Path) -> None:
    path = tmp_path / "teacher.pt"
    save(digits_model(seed=1), path)
    first = tiny_config(*TEACHER, f"teacher.checkpoint={path}").teacher_fingerprint("v")
    assert tiny_config(*TEACHER, f"teacher.checkpoint={path}").teacher_fingerprint("v") == first
    save(digits_model(seed=2), path)  # other weights at the same path
    assert tiny_config(*TEACHER, f"teacher.checkpoint={path}").teacher_fingerprint("v") != first


@pytest.mark.parametrize(("overrides", "message"), [
    (["teacher.checkpoint=nowhere.pt"], "teacher.checkpoint: no file 'nowhere.pt'"),
    (["teacher.checkpoint=weights.txt"], "teacher.checkpoint: 'weights.txt' is not a checkpoint file; allowed: "
                                         ".safetensors, .pt, .pth, .bin"),
    (["teacher.train=false"], "teacher.train: false uses a model as it is, so it needs a checkpoint"),
    (["student.checkpoint=CKPT", "student.train=false"], "student.train: only a teacher is used as it is"),
])
def test_bad_checkpoint_fields_are_one_line_errors(tmp_path: Path, overrides: list[str], message: str) -> None:
    (tmp_path / "weights.txt").write_text("not weights")
    path = save(digits_model(width=8), tmp_path / "s.pt")
    overrides = [o.replace("weights.txt", str(tmp_path / "weights.txt")).replace("CKPT", str(path))
                 for o in overrides]
    with pytest.raises(ConfigError) as err:
        tiny_config(*TEACHER, *overrides)
    assert message.replace("'weights.txt'", repr(str(tmp_path / "weights.txt"))) in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: digits_model(width=16), "teacher.checkpoint: w.pt does not fit model mlp: blocks.0.0.weight has shape "
                                     "(16, 64), the model's is (32, 64)"),
    (lambda: torch.nn.Linear(2, 2), "teacher.checkpoint: w.pt does not fit model mlp: missing keys blocks.0.0.bias, "
                                    "blocks.0.0.weight, head.bias (+1 more); unexpected keys bias, weight"),
])
def test_a_checkpoint_of_another_model_stops_the_study_before_anything_is_logged(
        tmp_path: Path, make, message: str, capsys: pytest.CaptureFixture) -> None:
    path = save(make(), tmp_path / "w.pt")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "study.yaml"
    config.write_text("data:\n  name: digits\n")
    code = cli.main(["run", "--tracking-uri", uri, "--no-progress", str(config), *TINY, *TEACHER,
                     f"teacher.checkpoint={path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].endswith(message), err
    assert list_studies(uri).empty


def test_the_summary_says_where_the_weights_came_from(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = save(digits_model(), tmp_path / "t.safetensors")
    config = tmp_path / "study.yaml"
    config.write_text("data:\n  name: digits\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli.main(["run", "--tracking-uri", uri, "--no-progress", str(config), *TINY, *TEACHER,
                     f"teacher.checkpoint={path}", "teacher.train=false"]) == 0
    assert f"teacher weights from {path} (as is)" in capsys.readouterr().out
    (study,) = list_studies(uri).to_dict("records")
    params = MlflowTracker(uri, "kd-explorer").get_run(study["study_id"]).params
    assert params["teacher.checkpoint"] == str(path) and params["teacher.train"] == "False"


def test_a_file_that_is_no_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ConfigError, match=r"teacher.checkpoint: w.pt holds no state dict"):
        Study(tiny_config(*TEACHER, f"teacher.checkpoint={path}"), MlflowTracker(f"sqlite:///{tmp_path}/m.db",
                                                                                 "x"), progress=False).run()


# --- how often a role's training checkpoint is written ---------------------------------------------------------
def record_saves(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(file name, epochs done) of every training checkpoint written from now on."""
    from kdcore import engine

    saves: list[tuple[str, int]] = []
    real = engine._save_atomic

    def save(path: Path, state: dict) -> None:
        saves.append((path.name, state["epoch"]))
        real(path, state)

    monkeypatch.setattr(engine, "_save_atomic", save)
    return saves


def test_the_checkpoint_policy_is_by_epochs_when_set_else_by_time_and_always_after_the_last_epoch() -> None:
    from kdcore.engine import CheckpointPolicy

    by_time, every_epoch, by_epochs = CheckpointPolicy(60), CheckpointPolicy(0), CheckpointPolicy(60, 2)
    assert [by_time.due(done, 5, 59.9) for done in range(1, 6)] == [False] * 4 + [True]
    assert by_time.due(1, 5, 60.0) and all(every_epoch.due(done, 5, 0.0) for done in range(1, 6))
    assert [by_epochs.due(done, 5, 3600.0) for done in range(1, 6)] == [False, True, False, True, True]
    assert CheckpointPolicy.of(tiny_config().train) == CheckpointPolicy(60.0, None)
    assert CheckpointPolicy.of(tiny_config("train.checkpoint_every_epochs=3").train).every_epochs == 3


@pytest.mark.parametrize(("overrides", "expected"), [
    ([], [3, 5]),  # 60 s: due after the third epoch (75 s), then the last
    (["train.checkpoint_every_s=0"], [1, 2, 3, 4, 5]),
    (["train.checkpoint_every_s=1000"], [5]),
    (["train.checkpoint_every_epochs=2"], [2, 4, 5]),  # by epochs, whatever the clock says
])
def test_fit_writes_its_checkpoint_as_the_config_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      overrides: list[str], expected: list[int]) -> None:
    """Each epoch takes 25 s of a fake clock; the checkpoint follows train.checkpoint_every_s / _epochs."""
    from kdcore import engine
    from kdcore.engine import CheckpointPolicy, fit
    from kdcore.methods.base import build_method

    cfg = tiny_config("train.epochs=5", *overrides)
    clock = {"now": 0.0}
    monkeypatch.setattr(engine.time, "monotonic", lambda: clock["now"])
    saves = record_saves(monkeypatch)
    splits = load_dataset(cfg.data)
    method = build_method("none", digits_model(width=8), None, cfg.distill.for_plain_labels())
    fit(method, splits, cfg.train, role="baseline", epochs=5, device=torch.device("cpu"),
        callbacks=[lambda report: clock.update(now=clock["now"] + 25)], checkpoint=tmp_path / "baseline.pt",
        checkpoint_policy=CheckpointPolicy.of(cfg.train), progress=False)
    assert [epoch for _, epoch in saves] == expected


def test_a_study_checkpoints_every_n_epochs_and_a_resume_continues_from_there(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With train.checkpoint_every_epochs=2 every role saves after epochs 2, 4 and its last. A crash in the
    student's fourth epoch resumes from epoch 2: epoch 3 is trained again but not logged again, and the study
    ends as the uninterrupted one, bit for bit."""
    from kdcore.methods.kd import KD
    from kdcore.study import StudyFailed

    cfg = tiny_config("train.epochs=5", "train.checkpoint_every_epochs=2")
    saves = record_saves(monkeypatch)
    reference = Study(cfg, MemoryTracker(), progress=False)
    reference.run()
    assert saves == [(f"{role}.pt", epoch) for role in ("teacher", "baseline", "student") for epoch in (2, 4, 5)]

    saves.clear()
    real, calls = KD.step, {"n": 0}
    steps_per_epoch = -(-len(reference.splits.train.y) // cfg.train.batch_size)

    def crash(self: KD, batch: object) -> object:
        calls["n"] += 1
        if calls["n"] > 3 * steps_per_epoch + 2:
            raise RuntimeError("simulated power cut")
        return real(self, batch)

    monkeypatch.setattr(KD, "step", crash)
    tracker = MemoryTracker()
    with pytest.raises(StudyFailed) as info:
        Study(cfg, tracker, progress=False).run()
    assert [s for s in saves if s[0] == "student.pt"] == [("student.pt", 2)]
    monkeypatch.setattr(KD, "step", real)
    saves.clear()
    resumed = Study.resume(info.value.study_id, tracker, progress=False)
    resumed.run()
    assert saves == [("student.pt", 4), ("student.pt", 5)]
    student = tracker.find_runs({"kd.study_id": info.value.study_id, "kd.role": "student"})[0]
    for key in ("val/acc", "train/loss", "train/loss_kd"):
        assert [step for step, _ in tracker.metric_history(student.run_id, key)] == [0, 1, 2, 3, 4], key
    ours, theirs = resumed.roles["student"].model.state_dict(), reference.roles["student"].model.state_dict()
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)
    assert resumed.roles["student"].metrics["test/acc"] == reference.roles["student"].metrics["test/acc"]


class Stop(Exception):
    """Stands in for a crash between two epochs."""


def test_a_resumed_fit_continues_the_random_draws_of_augmentation(tmp_path: Path) -> None:
    """The checkpoint holds torch's random state: a fit stopped after its second epoch and resumed ends with the
    weights of the uninterrupted fit although every batch was augmented with fresh noise."""
    from kdcore.data.splits import DatasetSplits
    from kdcore.engine import EpochReport, fit
    from kdcore.methods.base import build_method

    cfg = tiny_config("train.epochs=4")
    plain = load_dataset(cfg.data)
    splits = DatasetSplits(plain.name, plain.train, plain.val, plain.test, plain.test_shifted, plain.num_classes,
                           plain.input_shape, plain.shift, augment=lambda x: x + 0.5 * torch.randn_like(x))

    def train(checkpoint: Path | None, stop_after: int | None = None) -> torch.nn.Module:
        torch.manual_seed(0)
        model = digits_model(width=8)
        method = build_method("none", model, None, cfg.distill.for_plain_labels())

        def stop(report: EpochReport) -> None:
            if report.epoch == stop_after:
                raise Stop

        with contextlib.suppress(Stop):
            fit(method, splits, cfg.train, role="baseline", epochs=4, device=torch.device("cpu"), callbacks=[stop],
                checkpoint=checkpoint, progress=False)
        return model

    reference = train(None).state_dict()
    train(tmp_path / "baseline.pt", stop_after=2)  # stopped after its third epoch, saved after its second
    torch.manual_seed(123)  # whatever the state when it resumes
    resumed = train(tmp_path / "baseline.pt").state_dict()
    assert all(torch.equal(resumed[key], reference[key]) for key in reference)
