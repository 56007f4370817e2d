"""Config validation: every wrong value is one line naming the field and what is allowed."""

from __future__ import annotations

import pytest

from kdcore.config import ConfigError, apply_overrides, config_from_yaml, load_config, load_raw
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
    ("train.epochs.per_role=1", "train.epochs.per_role: epochs is a value, not a section"),
    ("train.lr=true", "train.lr: Input should be a number, not true"),
    ("train.epochs=false", "train.epochs: Input should be an integer, not false"),
    ("train.epochs=2.5", "train.epochs: Input should be a valid integer, got a number with a fractional part"),
    ("train.amp=1", "train.amp: Input should be true or false, not a number (got 1)"),
    ("distill.stage_temperatures=[4,true]", "distill.stage_temperatures: Input should be a number, not true"),
    ("distill.temperature=.nan", "distill.temperature: Input should be a finite number (got nan)"),
    ("train.lr=.inf", "train.lr: Input should be a finite number (got inf)"),
    ("train.lr=1e400", "train.lr: Input should be a finite number (got '1e400')"),
    ("train.seed=10000000000", "train.seed: Input should be less than or equal to 1000000000"),
    ("data.split_seed=4294967296", "data.split_seed: Input should be less than or equal to 1000000000"),
    ("tracking.experiment=" + "e" * 501,
     "tracking.experiment: String should have at most 500 characters, MLflow's limit for experiment names (got 501)"),
    (("tracking.experiment=' '",), "tracking.experiment: String should not be blank"),
    ('tracking.experiment="a\\x00b"', "tracking.experiment: control character '\\x00' at position 1; use printable"),
    ("tracking.study_name=" + "s" * 251,
     "tracking.study_name: String should have at most 250 characters, MLflow's limit for run names (got 251)"),
    ('tracking.study_name="two\\nlines"', "tracking.study_name: control character '\\n' at position 3"),
    ('tracking.uri="sqlite:///a\\rb.db"', "tracking.uri: control character '\\r' at position 11"),
    ('tracking.study_name="ab\\ud800"', "tracking.study_name: not storable text: '\\ud800' at position 2 is half of"),
    (("distill.method=fitnet", "distill.params={weight: true}"),
     "distill.params.weight: Input should be a number, not true"),
    (("distill.method=fitnet", "distill.params={weight: .inf}"),
     "distill.params.weight: Input should be a finite number (got inf)"),
    (("teacher.name=cnn2d", "student.name=cnn2d", "distill.method=multi",
      "distill.params={terms: [{term: kd, weight: -.inf}]}"), "distill.params.terms.0.weight: Input should be"),
    (("distill.mechanism=progressive", "distill.assistants=[" + ", ".join(["{name: mlp, width: 16}"] * 200) + "]"),
     "distill.assistants: too long to log as an MLflow param (9000 characters written out; at most 6000)"),
    ("data.name=" + "x" * 10_000, "data.name: unknown dataset 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...xxxxx"),
    ("train.epochs=1" + "0" * 5000, "train.epochs: Unable to parse input string as an integer, exceeded maximum size"),
    ("distill.params=" + "[" * 1000 + "]" * 1000, "distill.params: Input should be a valid dictionary (got '[[[["),
    ("train.lr=[1,2]", "train.lr: Input should be a valid number (got [1, 2])"),
    ("train=[1,2]", "train: Input should be a valid dictionary or instance of TrainConfig (got [1, 2])"),
    ("teacher.width={a:1}", "teacher.width: Input should be a valid integer"),
    ("distill.peers=nope", "distill.peers: Input should be a valid list (got 'nope')"),
    ("train.seed=2024-13-01", "train.seed: Input should be a valid integer, unable to parse string as an integer "
                              "(got '2024-13-01')"),
])
def test_bad_values_give_one_line_naming_the_field(override: str | tuple[str, ...], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        tiny_config(*(override if isinstance(override, tuple) else override.split(" ")))
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    assert message.startswith(expected), message


def test_numbers_may_be_written_as_yaml_text_and_sgd_may_run_without_momentum() -> None:
    cfg = tiny_config("train.lr=1e-3", "train.optimizer=sgd", "train.momentum=0", "train.epochs=2.0")
    assert cfg.train.lr == 0.001 and cfg.train.momentum == 0 and cfg.train.epochs == 2


@pytest.mark.parametrize(("text", "expected"), [
    ("", "is empty; expected a mapping of sections (data, teacher, student, distill, train, tracking)"),
    ("# only a comment\n", "is empty; expected a mapping of sections"),
    ("null\n", "is empty; expected a mapping of sections"),
    ("[]\n", ": expected a mapping of sections (data, teacher, student, distill, train, tracking), got a list"),
    ("just text\n", ": expected a mapping of sections (data, teacher, student, distill, train, tracking), got text"),
    ("data: " + "[" * 1000 + "]" * 1000 + "\n", ": invalid YAML, nested too deeply"),
    ("train: {seed: 2024-13-01}\n", ": invalid YAML value ('month must be in 1..12')"),
    ("train: {seed: !!int abc}\n", ": invalid YAML value"),
    ("train: {seed: 1" + "0" * 5000 + "}\n", ": invalid YAML value"),
])
def test_a_config_file_must_hold_a_mapping_of_sections(tmp_path, text: str, expected: str) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"config file {str(path)!r}") and expected in message, message
    assert "\n" not in message and len(message) < 400, message
    with pytest.raises(ConfigError) as info:
        config_from_yaml(text)
    assert str(info.value).startswith("config") and "\n" not in str(info.value)


def test_other_yaml_files_name_themselves(tmp_path) -> None:
    binary = tmp_path / "situation.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"^situation file '.*situation.yaml': cannot read it \(.*'utf-8' codec"):
        load_raw(binary, "situation file")
    binary.write_text("")
    with pytest.raises(ConfigError, match=r"^file '.*situation.yaml' is empty; expected a YAML mapping$"):
        load_raw(binary)
    with pytest.raises(ConfigError, match=r"^config is empty; expected a mapping of sections"):
        apply_overrides(None, ["train.seed=1"])  # type: ignore[arg-type]


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
    assert tiny_config("distill.temperature=9", "student.width=4").teacher_fingerprint("v") == base
    assert tiny_config("train.amp=false").teacher_fingerprint("v") == base  # on the CPU, AMP is never on
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
