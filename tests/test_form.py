"""The Launch form is derived from the config: every field, its choices, bounds and defaults."""

from __future__ import annotations

from dashboard.form import HIDDEN, config_fields, nest
from kdcore.config import ExperimentConfig, field_errors
from kdcore.registry import METHODS, MODELS


def test_every_settable_field_has_a_spec() -> None:
    specs = {s.path: s for s in config_fields()}
    expected = {f"{section}.{name}" for section, field in ExperimentConfig.model_fields.items()
                for name in field.annotation.model_fields} - HIDDEN
    assert set(specs) == expected
    assert specs["distill.method"].kind == "choice" and specs["distill.method"].options == tuple(METHODS.names())
    assert specs["teacher.name"].options == tuple(e.name for e in MODELS if not e.meta.get("source"))
    assert "import" in MODELS.names() and "import" not in specs["teacher.name"].options  # needs a server path
    assert specs["train.optimizer"].options == ("adam", "adamw", "sgd")
    temperature = specs["distill.temperature"]
    assert (temperature.kind, temperature.minimum, temperature.exclusive_min, temperature.maximum) == (
        "float", 0, True, 100)
    assert temperature.allowed() == "a number > 0 and ≤ 100; default 4.0"
    assert specs["data.n_samples"].optional and specs["data.n_samples"].kind == "int"
    assert specs["train.amp"].kind == "bool" and specs["distill.params"].kind == "mapping"
    assert specs["distill.assistants"].kind == "list" and specs["distill.rationale"].kind == "longtext"


def test_nested_values_validate_and_errors_come_back_by_field() -> None:
    values = {s.path: s.default for s in config_fields()}
    assert field_errors(nest(values)) == {}
    values["distill.temperature"] = -3.0
    values["train.epochs"] = 0
    errors = field_errors(nest(values))
    assert set(errors) == {"distill.temperature", "train.epochs"}
    assert errors["distill.temperature"].startswith("Input should be greater than 0")
