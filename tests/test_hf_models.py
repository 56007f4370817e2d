"""Models from outside: ``name: hf`` (transformers), ``timm``, ``torchvision``; sizing on the meta device."""

from __future__ import annotations

import math
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from kdcore import cli
from kdcore.config import ModelConfig
from kdcore.models.base import ModelSourceError, build_model, count_parameters
from kdcore.models.checkpoint import CheckpointError
from kdcore.models.hf import HFModel
from kdcore.models.sizing import count_parameters_without_weights
from kdcore.study import Study
from kdcore.study_results import study_results
from kdcore.tracker import MemoryTracker
from kdcore.tracking import list_studies
from tests.helpers import TINY, tiny_config
from tests.hf_tiny import PAD, VOCAB, llama_7b_config, tiny_bert, tiny_gpt2, tiny_vit

pytest.importorskip("transformers")
IDS = torch.tensor([[5, 6, 7, 8, PAD, PAD, PAD, PAD], [1, 2, 3, 4, 5, 6, 7, 9]])  # (B, T), the first row padded


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {"bert": tiny_bert(root / "bert"), "gpt2": tiny_gpt2(root / "gpt2"), "vit": tiny_vit(root / "vit")}


def hf(path: Path, shape: tuple[int, ...], num_classes: int, **fields: object) -> HFModel:
    model = build_model(ModelConfig(name="hf", path=str(path), **fields), shape, num_classes)
    assert isinstance(model, HFModel)
    return model


def shapes(features: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(value.shape) for name, value in features.items()}


# --- outputs -------------------------------------------------------------------------------------------------


def test_a_bert_classifier_returns_logits_hidden_states_its_pooled_token_and_masked_attention(folders) -> None:
    model = hf(folders["bert"], (8,), 3).eval()
    out = model(IDS.float())  # token ids arrive as numbers from shape probes
    assert out.logits.shape == (2, 3)
    assert shapes(out.features) == {"block1": (2, 32, 8), "block2": (2, 32, 8), "penultimate": (2, 32)}
    net = model.net
    hidden = net(IDS, attention_mask=(IDS != PAD).long(), output_hidden_states=True).hidden_states
    torch.testing.assert_close(out.features["block2"], hidden[2].transpose(1, 2))  # channels-first, (B, hidden, T)
    torch.testing.assert_close(out.features["penultimate"], hidden[2][:, 0])  # the [CLS] token
    pooled = net.bert.pooler.activation(net.bert.pooler.dense(out.features["penultimate"]))
    torch.testing.assert_close(net.classifier(pooled), out.logits)  # what the head reads
    assert [tuple(a.shape) for a in out.attentions] == [(2, 2, 8, 8)] * 2
    assert out.attention_logits[0][0, :, :, 4:].isneginf().all()  # padded keys
    assert torch.isfinite(out.attention_logits[0][1]).all()  # nothing masked in the full row


def test_a_gpt2_language_model_returns_next_token_logits_and_causal_attention(folders) -> None:
    model = hf(folders["gpt2"], (12,), 14).train()  # attention dropout is off: every map stays a distribution
    out = model(torch.zeros(3, 12))
    assert model.task == "causal language model" and out.logits.shape == (3, 12, 14)
    assert shapes(out.features) == {"block1": (3, 32, 12), "block2": (3, 32, 12), "penultimate": (3, 32, 12)}
    for probs, scores in zip(out.attentions, out.attention_logits, strict=True):
        assert probs.shape == (3, 2, 12, 12)
        torch.testing.assert_close(probs.sum(-1), torch.ones(3, 2, 12))
        torch.testing.assert_close(scores.softmax(-1), probs)
        assert scores[..., torch.ones(12, 12, dtype=torch.bool).triu(1)].isneginf().all()  # later keys


def test_a_decoder_classifier_pools_its_last_real_token(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2ForSequenceClassification

    config = GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=32, n_layer=1, n_head=2, num_labels=4,
                        pad_token_id=PAD, bos_token_id=None, eos_token_id=None)
    GPT2ForSequenceClassification(config).save_pretrained(tmp_path)
    model = hf(tmp_path, (8,), 4).eval()
    out = model(IDS)
    assert model.task == "sequence classifier" and out.features["penultimate"].shape == (2, 32)
    torch.testing.assert_close(out.features["penultimate"][0], out.features["block1"][0, :, 3])  # last real token
    torch.testing.assert_close(model.net.score(out.features["penultimate"]), out.logits)
    assert out.attention_logits[0][0, :, 4:, 5:].isneginf().all()  # causal and padded keys


def test_a_vit_classifier_reads_images_and_pools_what_its_head_reads(folders) -> None:
    model = hf(folders["vit"], (1, 8, 8), 10).eval()
    out = model(torch.randn(2, 1, 8, 8))
    assert out.logits.shape == (2, 10)
    assert shapes(out.features) == {"block1": (2, 32, 5), "block2": (2, 32, 5), "penultimate": (2, 32)}
    torch.testing.assert_close(model.net.classifier(out.features["penultimate"]), out.logits)
    assert [tuple(a.shape) for a in out.attentions] == [(2, 2, 5, 5)] * 2  # 4 patches and [CLS]


def test_named_submodules_add_hooked_features(folders) -> None:
    model = hf(folders["gpt2"], (12,), 14, features={"penultimate": "transformer.h.0"})
    out = model(torch.zeros(2, 12))
    torch.testing.assert_close(out.features["penultimate"], out.features["block1"])  # the first layer's output


def test_overrides_build_a_smaller_model_of_the_family_with_fresh_weights(folders) -> None:
    saved = hf(folders["bert"], (8,), 3).net
    shallow = hf(folders["bert"], (8,), 3, depth=1).net
    narrow = hf(folders["bert"], (8,), 3, width=16).net
    by_kwargs = hf(folders["bert"], (8,), 3, kwargs={"num_hidden_layers": 1}).net
    assert [len(net.bert.encoder.layer) for net in (saved, shallow, by_kwargs)] == [2, 1, 1]
    assert narrow.config.hidden_size == 16 and narrow.config.num_attention_heads == 1  # heads keep 16 dims
    assert narrow.config.intermediate_size == 32  # the MLP keeps its ratio
    from safetensors.torch import load_file

    weights = load_file(str(folders["bert"] / "model.safetensors"))
    word = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(saved.state_dict()[word], weights[word])
    assert not torch.equal(shallow.state_dict()[word], weights[word])
    gpt = hf(folders["gpt2"], (12,), 14, width=16, depth=1).net
    assert (gpt.config.n_embd, gpt.config.n_layer, gpt.config.n_head) == (16, 1, 1)  # GPT-2's own names


# --- studies -------------------------------------------------------------------------------------------------


def gpt2_study(folder: Path) -> list[str]:
    return ["data.name=arithmetic", "data.n_samples=300", "teacher.name=hf", f"teacher.path={folder}",
            "teacher.width=null", "teacher.depth=null", "student.name=hf", f"student.path={folder}",
            "student.width=null", "student.depth=1"]


def run_study(*overrides: str) -> tuple[MemoryTracker, str]:
    tracker = MemoryTracker()
    summary = Study(tiny_config(*overrides), tracker, progress=False).run()
    return tracker, summary.study_id


def student_terms(tracker: MemoryTracker, study_id: str) -> dict[str, list[float]]:
    run = next(r.run_id for r in tracker.find_runs({"kd.study_id": study_id}) if r.tags["kd.role"] == "student")
    return {key: [v for _, v in tracker.metric_history(run, key)] for run_id, key in tracker.history
            if run_id == run and key.startswith("train/loss_")}


@pytest.mark.parametrize(("method", "term"), [
    (["distill.method=kd"], "kd"),
    (["distill.method=fitnet", "distill.params={student_layer: last}"], "hint"),
    (["distill.method=multi", "distill.params={terms: [{term: kd}, {term: attention_pattern}]}"], "attention_pattern"),
])
def test_a_gpt2_teacher_distils_into_a_shallower_gpt2_on_arithmetic(folders, method: list[str], term: str) -> None:
    tracker, study_id = run_study(*gpt2_study(folders["gpt2"]), *method)
    assert {"teacher", "baseline", "student"} <= study_results(tracker, study_id).metrics.keys()
    terms = student_terms(tracker, study_id)
    assert f"train/loss_{term}" in terms, terms
    assert all(math.isfinite(v) for values in terms.values() for v in values), terms


def test_a_vit_teacher_distils_into_a_smaller_vit_on_digits(folders) -> None:
    vit = ["teacher.name=hf", f"teacher.path={folders['vit']}", "teacher.width=null", "teacher.depth=null",
           "student.name=hf", f"student.path={folders['vit']}", "student.width=16", "student.depth=1",
           "distill.method=multi", "distill.params={terms: [{term: kd}, {term: hint}, {term: attention_pattern}]}"]
    tracker, study_id = run_study(*vit)
    assert {"teacher", "baseline", "student"} <= study_results(tracker, study_id).metrics.keys()
    terms = student_terms(tracker, study_id)
    assert {"train/loss_kd", "train/loss_hint", "train/loss_attention_pattern"} <= terms.keys()
    assert all(math.isfinite(v) for values in terms.values() for v in values), terms


def test_a_pretrained_teacher_is_used_as_it_is_and_the_summary_and_study_say_so(folders) -> None:
    from kdcore.cli import format_summary

    cfg = tiny_config("teacher.name=hf", f"teacher.path={folders['vit']}", "teacher.width=null",
                      "teacher.depth=null", "teacher.train=false")
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    teacher = next(r for r in tracker.find_runs({"kd.study_id": summary.study_id}) if r.tags["kd.role"] == "teacher")
    assert teacher.tags["kd.weights"] == "its own, as is"
    assert not any(key.startswith("train/") for run_id, key in tracker.history if run_id == teacher.run_id)
    text = format_summary(summary, "memory")
    assert f"teacher weights from {folders['vit']} (as is)" in text
    assert f"shifted test split: {summary.shift}" in text and summary.shift
    assert tracker.get_run(summary.study_id).tags["kd.shift"] == summary.shift


def test_a_progressive_chain_takes_its_assistant_from_the_family(folders) -> None:
    chain = ["distill.mechanism=progressive",
             f"distill.assistants=[{{name: hf, path: {folders['gpt2']}, kwargs: {{n_embd: 16}}, depth: 1}}]"]
    tracker, study_id = run_study(*gpt2_study(folders["gpt2"]), *chain)
    assert {"teacher", "assistant_1", "baseline", "student"} <= study_results(tracker, study_id).metrics.keys()


# --- checkpoints ---------------------------------------------------------------------------------------------


def test_a_raw_state_dict_of_the_transformers_model_is_a_checkpoint(folders, tmp_path: Path) -> None:
    source = hf(tiny_bert(tmp_path / "other", seed=1), (8,), 3).net  # other weights than the folder's
    path = tmp_path / "bert.safetensors"
    save_file(source.state_dict(), str(path))
    loaded = hf(folders["bert"], (8,), 3, checkpoint=str(path)).net
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    gpt = hf(folders["gpt2"], (12,), 14).net
    save_file({k: v.clone() for k, v in gpt.state_dict().items()}, str(tmp_path / "gpt2.safetensors"))  # tied
    with pytest.raises(CheckpointError) as err:
        hf(folders["bert"], (8,), 3, checkpoint=str(tmp_path / "gpt2.safetensors"))
    assert "gpt2.safetensors does not fit model hf: missing keys bert." in str(err.value)
    assert "\n" not in str(err.value)


# --- bad input -----------------------------------------------------------------------------------------------


def source_error(path: Path | str, shape: tuple[int, ...] = (8,), num_classes: int = 3) -> ModelSourceError:
    with pytest.raises(ModelSourceError) as err:
        build_model(ModelConfig(name="hf", path=str(path)), shape, num_classes)
    assert "\n" not in str(err.value)
    return err.value


def test_a_folder_without_config_json_says_how_to_save_one(tmp_path: Path) -> None:
    err = source_error(tmp_path)
    assert err.field == "path" and str(err) == f"{tmp_path} has no config.json; save the model with save_pretrained"


def test_a_hub_id_out_of_reach_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    err = source_error("kdx-nobody/no-such-model")
    assert err.field == "path" and str(err).startswith("kdx-nobody/no-such-model: no such folder here, and the hub")


def test_a_fine_tuned_head_of_other_labels_is_not_replaced(folders) -> None:
    err = source_error(folders["bert"], num_classes=5)
    assert "classifies 3 labels; the data has 5 classes" in str(err)
    assert hf(folders["bert"], (8,), 5, depth=1).net.config.num_labels == 5  # a fresh model takes the data's


def test_a_language_model_of_another_vocabulary_is_one_line(folders) -> None:
    assert "predicts 14 tokens (vocab_size); the data has 20 token classes" in str(source_error(folders["gpt2"],
                                                                                              (12,), 20))


def test_without_transformers_the_error_says_how_to_install_it(folders, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    err = source_error(folders["bert"])
    assert err.field == "name" and str(err).startswith("model hf needs transformers")
    assert str(err).endswith('pip install "kd-explorer[hf]"')


def test_a_bad_hf_folder_stops_kdx_run_before_anything_is_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    config = tmp_path / "study.yaml"
    config.write_text("data:\n  name: digits\n")
    teacher = ["teacher.name=hf", "teacher.width=null", "teacher.depth=null", f"teacher.path={tmp_path / 'empty'}"]
    code = cli.main(["run", "--no-progress", str(config), *TINY, *teacher])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"kdx: error: teacher.path: {tmp_path / 'empty'} has no config.json"), err
    assert list_studies(f"sqlite:///{tmp_path / 'mlflow.db'}").empty


# --- timm and torchvision ------------------------------------------------------------------------------------


class ZooNet(nn.Module):
    """What a model zoo builds: convolutions, pooling and a classifier named ``fc``."""

    def __init__(self, in_chans: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, num_classes)
        self.pretrained_cfg = {"classifier": "fc"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv(x).relu()).flatten(1))


def fake_zoo(monkeypatch: pytest.MonkeyPatch, package: str) -> dict[str, object]:
    """Put a stand-in for ``timm`` or ``torchvision.models`` into ``sys.modules``; returns the last call's kwargs."""
    calls: dict[str, object] = {}

    def build(name: str, **kwargs: object) -> ZooNet:
        if name != "zoonet":
            raise RuntimeError(f"Unknown model ({name})")
        calls.update(kwargs)
        return ZooNet(int(kwargs.get("in_chans", 3)), int(kwargs["num_classes"]))

    module = types.ModuleType(package)
    if package == "timm":
        module.create_model = build
    else:
        module.get_model = build
        monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, package, module)
    return calls


@pytest.mark.parametrize(("name", "package"), [("timm", "timm"), ("torchvision", "torchvision.models")])
def test_a_zoo_model_is_built_for_the_data_with_its_head_input_as_penultimate(
        monkeypatch: pytest.MonkeyPatch, name: str, package: str) -> None:
    calls = fake_zoo(monkeypatch, package)
    spec = ModelConfig(name=name, path="zoonet", kwargs={"pretrained": True}, features={"block1": "conv"})
    model = build_model(spec, (1, 8, 8), 10)
    out = model(torch.randn(2, 1, 8, 8))  # torchvision's model reads 3 channels: grayscale is repeated
    assert out.logits.shape == (2, 10) and shapes(out.features) == {"block1": (2, 4, 8, 8), "penultimate": (2, 4)}
    torch.testing.assert_close(model.net.fc(out.features["penultimate"]), out.logits)
    expected = {"pretrained": True, "in_chans": 1} if name == "timm" else {"weights": "DEFAULT"}
    assert calls == expected | {"num_classes": 10}
    with pytest.raises(ModelSourceError, match=r"failed: RuntimeError: Unknown model \(resnet\)$"):
        build_model(ModelConfig(name=name, path="resnet"), (1, 8, 8), 10)


def test_a_study_distils_a_timm_teacher(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_zoo(monkeypatch, "timm")
    teacher = ["teacher.name=timm", "teacher.path=zoonet", "teacher.width=null", "teacher.depth=null"]
    tracker, study_id = run_study(*teacher, "distill.method=rkd")
    assert {"teacher", "baseline", "student"} <= study_results(tracker, study_id).metrics.keys()


@pytest.mark.parametrize(("name", "package"), [("timm", "timm"), ("torchvision", "torchvision.models")])
def test_without_the_zoo_package_the_error_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch, name: str, package: str) -> None:
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(ModelSourceError) as err:
        build_model(ModelConfig(name=name, path="resnet18"), (3, 8, 8), 10)
    assert err.value.field == "name" and str(err.value).startswith(f"model {name} needs {package}")
    assert str(err.value).endswith('pip install "kd-explorer[vision]"') and "\n" not in str(err.value)


# --- sizing --------------------------------------------------------------------------------------------------


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_a_7b_language_model_is_sized_from_its_config_without_allocating(tmp_path: Path) -> None:
    folder = llama_7b_config(tmp_path / "llama")  # config.json alone: no weights to read
    before, start = resident_mb(), time.perf_counter()
    params = count_parameters_without_weights(ModelConfig(name="hf", path=str(folder)), (12,), 32000)
    assert 6.7e9 < params < 6.8e9  # Llama-2-7B: 6,738,415,616
    assert time.perf_counter() - start < 30
    assert resident_mb() - before < 1024  # its float32 weights would take 25 GiB


@pytest.mark.parametrize("spec", [
    {"name": "transformer", "width": 32, "depth": 2},
    {"name": "import", "path": "tests.byo_models:small_cnn", "kwargs": {"width": 8}},
    {"name": "hf", "depth": 1},
    {"name": "hf"},
])
def test_sizing_counts_what_building_counts(folders, spec: dict) -> None:
    model = ModelConfig(**spec | ({"path": str(folders["vit"])} if spec["name"] == "hf" else {}))
    shape, classes = ((12,), 14) if model.name == "transformer" else ((1, 8, 8), 10)
    assert count_parameters_without_weights(model, shape, classes) == count_parameters(build_model(model, shape,
                                                                                                   classes))
