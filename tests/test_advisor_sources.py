"""The advisor on models and data of the user's own: sized without weights, advised, written as a runnable config."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdcore import advisor
from kdcore.advisor import AdviceError, situation
from kdcore.study import Study
from kdcore.tracker import MemoryTracker
from tests.hf_tiny import tiny_gpt2, tiny_vit

TINY = {"train": {"epochs": 1, "batch_size": 64, "threads": 1, "device": "cpu"}, "data": {"n_samples": 300}}


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gpt2")
    return tiny_gpt2(folder, layers=4)


def test_a_hugging_face_pair_is_sized_from_its_config_and_advised(gpt2: Path) -> None:
    s = situation({"dataset": "arithmetic", "teacher": {"model": "hf", "path": str(gpt2)},
                   "student": {"model": "hf", "path": str(gpt2), "width": 8, "depth": 1}})
    facts = advisor.facts(s)
    from kdcore.config import ModelConfig
    from kdcore.models.base import build_model, count_parameters

    built = count_parameters(build_model(ModelConfig(name="hf", path=str(gpt2)), (12,), 14))
    assert facts.teacher_params == built  # counted on the meta device, equal to the real model
    assert facts.teacher_architecture == facts.student_architecture == "hf:gpt2"
    advice = advisor.advise(s)
    assert advice.mechanism == "progressive" and advice.assistants  # a gap this wide calls for assistants
    for assistant in advice.assistants:  # of the teacher's family: its config, smaller
        assert assistant.name == "hf" and assistant.source == {"path": str(gpt2)}
        assert facts.student_params < assistant.params < facts.teacher_params
    cfg = advice.to_config(TINY)
    assert cfg.teacher.path == cfg.student.path == str(gpt2) and cfg.student.depth == 1
    assert [a.path for a in cfg.distill.assistants] == [str(gpt2)] * len(advice.assistants)


def test_the_advised_config_of_your_own_models_runs(tmp_path: Path) -> None:
    vit = tiny_vit(tmp_path / "vit")
    s = situation({"dataset": "digits", "teacher": {"model": "hf", "path": str(vit)},
                   "student": {"model": "mlp", "size": "tiny"}})
    cfg = advisor.advise(s).to_config(TINY | {"data": {}})
    summary = Study(cfg, MemoryTracker(), progress=False).run()
    assert {"teacher", "baseline", "student"} <= summary.roles.keys()


def test_your_data_sizes_the_models_and_goes_into_the_config(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    rows = ["a,b,c,label"] + [f"{i % 7},{i % 5},{i % 3},{'xyz'[i % 3]}" for i in range(150)]
    table.write_text("\n".join(rows) + "\n")
    s = situation({"data": {"name": "csv", "path": str(table)}, "teacher": {"model": "mlp", "size": "large"},
                   "student": {"model": "mlp", "size": "tiny"}})
    facts = advisor.facts(s)
    width, depth = advisor.MODELS.entry("mlp").meta["sizes"]["tiny"]
    assert facts.student_params == (3 * width + width) + (depth - 1) * (width * width + width) + (width * 3 + 3)
    cfg = advisor.advise(s).to_config({"train": TINY["train"]})
    assert (cfg.data.name, cfg.data.path) == ("csv", str(table))


def test_a_model_of_yours_that_cannot_be_read_names_its_side(tmp_path: Path) -> None:
    s = situation({"dataset": "digits", "teacher": {"model": "mlp"},
                   "student": {"model": "hf", "path": str(tmp_path)}})  # a folder without config.json
    with pytest.raises(AdviceError, match=r"^student\.path: .* has no config\.json"):
        advisor.advise(s)
