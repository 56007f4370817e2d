"""Config validation: every wrong value is one line naming the field and what is allowed."""

from __future__ import annotations

import pytest

from kdcore.config import ConfigError, config_from_yaml, load_config
from kdcore.registry import METHODS, MODELS
from tests.helpers import tiny_config


@pytest.mark.parametrize(("override", "expected"), [
    ("distill.method=nope", "distill.method: unknown method 'nope'; allowed: at, dist, dkd, fitnet, kd, multi"),
    ("distill.temperature=-1", "distill.temperature: Input should be greater than 0 (got -1)"),
    ("distill.alpha=1.5", "distill.alpha: Input should be less than or equal to 1 (got 1.5)"),
    ("train.optimizer=rmsprop", "train.optimizer: Input should be 'adam', 'adamw' or 'sgd' (got 'rmsprop')"),
    ("train.epochs=0", "train.epochs: Input should be greater than or equal to 1 (got 0)"),
    ("train.device=tpu", "train.device: 'tpu' is not a device; allowed: auto, cpu, cuda, cuda:N, mps"),
    ("distill.temprature=8", "distill.temprature: unknown key; allowed: method, mechanism, temperature"),
    ("data.n_samples=5000", "data.n_samples: dataset digits has a fixed size"),
    ("teacher.name=cnn1d", "teacher.name: model cnn1d needs 2-d inputs but dataset digits gives shape (1, 8, 8)"),
    ("student.name=cnn2d data.name=mnist1d", "student.name: model cnn2d needs 3-d inputs"),
    ("distill.params={beta:2}", "distill.params: method kd takes no extra parameters"),
    ("train", "override 'train': expected section.key=value"),
])
def test_bad_values_give_one_line_naming_the_field(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        tiny_config(*override.split(" "))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(expected), message


def test_missing_file_and_bad_yaml(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        load_config(bad)


def test_overrides_are_typed_and_yaml_round_trips(tmp_path) -> None:
    cfg = tiny_config("distill.temperature=8", "train.seed=2", "data.name=mnist1d", "data.n_samples=500")
    assert cfg.distill.temperature == 8.0 and cfg.train.seed == 2 and cfg.data.n_samples == 500
    path = tmp_path / "cfg.yaml"
    cfg.save(path)
    assert load_config(path) == cfg
    assert config_from_yaml(cfg.to_yaml()) == cfg
    assert cfg.flat()["distill.temperature"] == "8.0"


def test_teacher_fingerprint_ignores_what_cannot_change_the_teacher() -> None:
    base = tiny_config().teacher_fingerprint("v")
    assert tiny_config("distill.temperature=9", "train.threads=2", "student.width=4").teacher_fingerprint("v") == base
    assert tiny_config("teacher.width=33").teacher_fingerprint("v") != base
    assert tiny_config("train.seed=1").teacher_fingerprint("v") != base
    assert tiny_config("train.teacher_epochs=1").teacher_fingerprint("v") == base  # same budget as epochs=1


def test_every_registered_name_is_accepted() -> None:
    cnn = ["teacher.name=cnn2d", "student.name=cnn2d"]  # spatial features on both sides: every method applies
    for method in METHODS.names():
        assert tiny_config(*cnn, f"distill.method={method}").distill.method == method
    for model in MODELS.names():
        assert MODELS.entry(model).description


def test_model_sizes_default_to_the_model_and_fixed_variants_refuse_them() -> None:
    cfg = load_config(None, ["teacher.name=resnet20", "teacher.width=null", "teacher.depth=null"])
    assert cfg.teacher.width is None and cfg.teacher.depth is None
    with pytest.raises(ConfigError, match=r"^teacher\.width: resnet20 has a fixed size; leave width and depth empty, "
                                          r"or use the resnet family"):
        load_config(None, ["teacher.name=resnet20", "teacher.width=32"])


@pytest.mark.parametrize(("overrides", "message"), [
    (["distill.stage_temperatures=[2, 4]"],
     "distill.stage_temperatures: only the progressive mechanism uses it; leave it empty for offline"),
    (["distill.mechanism=progressive", "distill.assistants=[{name: mlp, width: 16}]", "distill.stage_temperatures=[4]"],
     "distill.stage_temperatures: give one per stage of the chain (2 here"),
    (["distill.mechanism=progressive", "distill.assistants=[{name: mlp, width: 16}]",
      "distill.stage_temperatures=[4, 0]"], "distill.stage_temperatures: each must be > 0 and <= 100"),
])
def test_stage_temperatures_fit_the_chain(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        tiny_config(*overrides)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize(("overrides", "message"), [
    (["distill.peers=[{name: mlp}]"], "distill.peers: only the online mechanism uses it; leave it empty for offline"),
    (["distill.skip_to_teacher=true"], "distill.skip_to_teacher: only the progressive mechanism uses it"),
    (["distill.generations=2"], "distill.generations: only the self mechanism uses it"),
    (["distill.exit=1"], "distill.exit: only the self mechanism uses it"),
    (["distill.mechanism=online"], "distill.peers: the online mechanism needs 1 to 3 peers"),
    (["distill.mechanism=online", "distill.peers=[{name: mlp}, {name: mlp}, {name: mlp}, {name: mlp}]"],
     "distill.peers: List should have at most 3 items"),
    (["distill.mechanism=online", "distill.peers=[{name: cnn1d}]"], "distill.peers.0.name: model cnn1d needs 2-d"),
    (["distill.mechanism=online", "distill.method=fitnet", "distill.peers=[{name: mlp}]"],
     "distill.method: the online mechanism exchanges outputs between peers"),
    (["distill.mechanism=self", "distill.self_kind=spatial", "distill.method=fitnet"],
     "distill.method: the spatial self mechanism"),
    (["distill.mechanism=self", "distill.self_kind=spatial", "student.depth=1"],
     "student.depth: spatial self-distillation needs a student of at least 2 blocks"),
    (["distill.mechanism=self", "distill.self_kind=spatial", "student.depth=2", "distill.exit=3"],
     "distill.exit: the student has exits 1 to 2"),
    (["distill.mechanism=progressive", "distill.assistants=[]"], "distill.assistants: the progressive mechanism needs"),
])
def test_mechanism_fields_are_checked(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        tiny_config(*overrides)
    assert str(err.value).startswith(message), str(err.value)
