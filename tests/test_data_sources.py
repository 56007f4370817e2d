"""The user's own data: imagefolder, csv, parquet, text and hf_disk, from files each test writes itself.

Each source runs a one-epoch study; the user's splits, the shifted test split, augmentation, streaming from
disk and bad input (one line naming the field, exit 2 and nothing logged) are checked on tiny files.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from kdcore.cli import main
from kdcore.config import ConfigError, DataConfig
from kdcore.data import sources
from kdcore.data.sources import StreamedArray
from kdcore.data.splits import DatasetSplits, cache_dir, load_dataset
from kdcore.methods.base import TeacherSource
from kdcore.registry import data_meta
from kdcore.study import Study
from kdcore.targets import IGNORE
from kdcore.tracker import MemoryTracker
from tests.helpers import TINY, tiny_config

ROOT = Path(__file__).resolve().parents[1]
CNN = ["teacher.name=cnn2d", "teacher.width=8", "teacher.depth=1", "student.name=cnn2d", "student.width=4",
       "student.depth=1"]
TRANSFORMER = [f"{role}.{key}" for role in ("teacher", "student") for key in ("name=transformer", "width=16",
                                                                              "depth=1")]
CLASSES = ("cat", "dog", "eel")


# --- files ------------------------------------------------------------------------------------------------------
def write_images(folder: Path, per_class: int = 10, size: tuple[int, int] = (8, 8), gray: bool = False,
                 seed: int = 0) -> Path:
    """PNGs of three classes, each a brightness band of its own, so a tiny CNN can tell them apart."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = (rng.random((size[1], size[0]) if gray else (size[1], size[0], 3)) * 60 + 80 * k)
            Image.fromarray(pixels.astype(np.uint8)).save(folder / name / f"{i:03d}.png")
    return folder


def table(n: int = 90, seed: int = 0) -> pd.DataFrame:
    """Two numeric columns and a string label that depends on them."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(3, 5, size=n)
    label = np.where(a > 0.4, "high", np.where(a < -0.4, "low", "mid"))
    return pd.DataFrame({"a": a, "b": b, "label": label})


def reviews(n: int = 60) -> pd.DataFrame:
    words = ["good film", "bad film", "great fun", "awful bore"]
    return pd.DataFrame({"text": [f"{words[i % 4]} {i}" for i in range(n)],
                         "label": ["pos" if i % 4 in (0, 2) else "neg" for i in range(n)]})


STORY = "the quick brown fox jumps over the lazy dog.\n" * 30


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    out = {"images": write_images(root / "images"), "shifted_images": write_images(root / "shifted", 2, seed=1)}
    table().to_csv(out.setdefault("csv", root / "t.csv"), index=False)
    table(30, seed=1).to_csv(out.setdefault("shifted_csv", root / "shifted.csv"), index=False)
    table().to_parquet(out.setdefault("parquet", root / "t.parquet"))
    reviews().to_csv(out.setdefault("reviews", root / "reviews.csv"), index=False)
    (out.setdefault("story", root / "story.txt")).write_text(STORY)
    return out


def data(name: str, path: Path, *more: str) -> list[str]:
    return [f"data.name={name}", f"data.path={path}", *more]


def study(*overrides: str) -> Study:
    """A one-epoch tiny study, run; the Study keeps its splits."""
    run = Study(tiny_config(*overrides), MemoryTracker(), progress=False)
    summary = run.run()
    assert {"teacher", "baseline", "student"} <= summary.roles.keys()
    return run


def source_splits(*fields: str) -> DatasetSplits:
    """The splits the ``data.key=value`` fields describe (the data alone: other fields are left out)."""
    pairs = (f.split("=", 1) for f in fields if f.startswith("data."))
    raw = {key.removeprefix("data."): yaml.safe_load(value) for key, value in pairs}
    return load_dataset(DataConfig.model_validate(raw))


# --- each source through a study --------------------------------------------------------------------------------
def test_imagefolder_study(files: dict[str, Path]) -> None:
    run = study(*data("imagefolder", files["images"]), *CNN)
    splits = run.splits
    assert splits.input_shape == (3, 8, 8) and splits.num_classes == 3
    assert sum(map(len, (splits.train, splits.val, splits.test))) == 30
    for split in (splits.train, splits.val, splits.test):  # stratified: the classes as even as they can be
        counts = torch.bincount(split.y, minlength=3)
        assert counts.max() - counts.min() <= 1
    assert splits.train.x.min() >= 0 and splits.train.x.max() <= 1
    meta = data_meta(run.cfg.data)
    assert (meta["modality"], meta["inputs"], meta["targets"], meta["classes"]) == ("image", "tensor", "classes",
                                                                                   list(CLASSES))


def test_imagefolder_takes_your_split_folders(tmp_path: Path) -> None:
    for split, count in (("train", 6), ("val", 2), ("test", 3)):
        write_images(tmp_path / "own" / split, count)
    splits = source_splits(*data("imagefolder", tmp_path / "own"))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (18, 6, 9)
    for split, count in (("train", 8), ("test", 3)):  # no val/: carved from train
        write_images(tmp_path / "two" / split, count)
    splits = source_splits(*data("imagefolder", tmp_path / "two"))
    assert len(splits.train) + len(splits.val) == 24 and len(splits.test) == 9 and len(splits.val) > 0


def test_grayscale_images_have_one_channel_and_image_size_resizes(tmp_path: Path) -> None:
    write_images(tmp_path / "gray", 4, gray=True)
    assert source_splits(*data("imagefolder", tmp_path / "gray")).input_shape == (1, 8, 8)
    write_images(tmp_path / "mixed", 4, size=(8, 8))
    write_images(tmp_path / "mixed", 1, size=(12, 10), seed=3)  # overwrites 000.png of each class
    splits = source_splits(*data("imagefolder", tmp_path / "mixed", "data.image_size=6"))
    assert splits.input_shape == (3, 6, 6) and splits.train.x.shape[1:] == (3, 6, 6)


def test_csv_study_standardises_with_the_training_split(files: dict[str, Path]) -> None:
    run = study(*data("csv", files["csv"]))
    splits = run.splits
    assert splits.input_shape == (2,) and splits.num_classes == 3
    assert torch.allclose(splits.train.x.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(splits.train.x.std(0, unbiased=False), torch.ones(2), atol=1e-4)
    assert data_meta(run.cfg.data)["classes"] == ["high", "low", "mid"]  # sorted label names -> 0, 1, 2
    x, high = splits.test.x[:, 0], splits.test.y == 0  # 'high' is a > 0.4, after standardising too
    assert high.any() and x[high].min() > x[~high].max()


def test_the_split_is_seeded_and_stratified(files: dict[str, Path]) -> None:
    shares = torch.bincount(source_splits(*data("csv", files["csv"])).train.y).float()
    shares /= shares.sum()
    tests = []
    for seed in range(4):
        splits = source_splits(*data("csv", files["csv"], f"data.split_seed={seed}"))
        for split in (splits.train, splits.val, splits.test):  # each class in its share, to one sample
            assert ((torch.bincount(split.y, minlength=3) - shares * len(split)).abs() <= 1.0 + 1e-6).all()
        tests.append(splits.test.x)
    assert not torch.equal(tests[0], tests[1])
    assert torch.equal(source_splits(*data("csv", files["csv"], "data.split_seed=1")).test.x, tests[1])


def test_a_split_column_is_your_split(tmp_path: Path) -> None:
    frame = table()
    frame["split"] = ["train"] * 60 + ["validation"] * 12 + ["test"] * 18
    frame.to_csv(tmp_path / "split.csv", index=False)
    splits = source_splits(*data("csv", tmp_path / "split.csv"))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (60, 12, 18)
    assert splits.input_shape == (2,)  # the split column is no input


def test_parquet_study(files: dict[str, Path]) -> None:
    splits = study(*data("parquet", files["parquet"])).splits
    assert splits.input_shape == (2,) and splits.num_classes == 3


class TokenBag(nn.Module):
    """Averaged token embeddings -> classes: a model of token ids with one class per sample."""

    def __init__(self, num_classes: int, vocab: int, width: int = 8) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab, width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x.long()))


def test_a_text_column_is_text_classification(files: dict[str, Path]) -> None:
    fields = data("csv", files["reviews"], "data.max_length=12")
    meta = data_meta(DataConfig(name="csv", path=str(files["reviews"]), max_length=12))
    assert (meta["modality"], meta["inputs"], meta["targets"], meta["input_shape"]) == ("text", "tokens", "classes",
                                                                                       (12,))
    bag = [f"{role}.{key}" for role in ("teacher", "student") for key in (
        "name=import", "width=null", "depth=null", "path=tests.test_data_sources:TokenBag",
        f"kwargs={{vocab: {meta['vocab_size']}}}")]
    splits = study(*fields, *bag).splits
    assert splits.train.x.dtype == torch.int64 and splits.train.x.shape[1:] == (12,)
    assert (splits.train.x == meta["pad_id"]).any()  # short reviews are padded
    assert splits.num_classes == 2 and set(splits.train.y.tolist()) == {0, 1}


def test_text_file_is_next_token_prediction(files: dict[str, Path]) -> None:
    run = study(*data("text", files["story"], "data.max_length=16"), *TRANSFORMER)
    splits, meta = run.splits, data_meta(run.cfg.data)
    assert (meta["inputs"], meta["targets"]) == ("tokens", "tokens")
    assert splits.num_classes == len(set(STORY)) + 1  # characters plus the pad
    x, y = splits.train.x, splits.train.y
    assert x.shape == y.shape and x.shape[1:] == (16,)
    scored = y[:, :-1] != IGNORE
    assert torch.equal(y[:, :-1][scored], x[:, 1:][scored])  # y is x moved by one token
    count = sum(map(len, (splits.train, splits.val, splits.test)))
    assert count == -(-len(STORY) // 17)  # every character is in one sequence
    assert not splits.exact_match  # running text is scored per token: no 16-character stretch is all right
    metrics = run.tracker.find_runs({"kd.study_id": run.study_id, "kd.role": "teacher"})[0].metrics
    assert metrics["test/acc"] == metrics["test/token_acc"] > 0
    assert metrics["val/best_acc"] > 0  # so the epoch kept is chosen on a number that moves


def test_text_with_a_hugging_face_tokenizer_folder(tmp_path: Path, files: dict[str, Path]) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", *sorted(set(STORY.replace(".", " .").split()))]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(tmp_path / "t")
    fields = [*data("text", files["story"], f"data.tokenizer={tmp_path / 't'}", "data.max_length=8"), *TRANSFORMER]
    meta = data_meta(tiny_config(*fields).data)
    assert meta["num_classes"] == len(words) and meta["pad_id"] == 0
    splits = source_splits(*fields)
    ids = torch.cat([splits.train.x, splits.val.x, splits.test.x]).unique().tolist()
    assert set(ids) <= set(range(len(words))) and 1 not in ids  # every word known


def test_hf_disk_splits_images_and_class_names(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    names = ["eel", "cat", "dog"]  # a ClassLabel keeps its own order, not the sorted one
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    rng = np.random.default_rng(0)

    def part(n: int) -> object:
        labels = [i % 3 for i in range(n)]
        images = [Image.fromarray((rng.random((8, 8, 3)) * 60 + 80 * k).astype(np.uint8)) for k in labels]
        return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)

    datasets.DatasetDict({"train": part(24), "validation": part(6), "test": part(9)}).save_to_disk(tmp_path / "d")
    run = study(*data("hf_disk", tmp_path / "d"), *CNN)
    assert (len(run.splits.train), len(run.splits.val), len(run.splits.test)) == (24, 6, 9)
    assert data_meta(run.cfg.data)["classes"] == names
    frame = table()
    datasets.Dataset.from_pandas(frame).save_to_disk(tmp_path / "numbers")  # one Dataset: our split
    splits = source_splits(*data("hf_disk", tmp_path / "numbers"))
    assert splits.input_shape == (2,) and sum(map(len, (splits.train, splits.val, splits.test))) == 90


# --- the shifted test split -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("source", "file", "shift", "says"), [
    ("imagefolder", "images", "noise", "corruption: Gaussian noise std 0.1 on the test images"),
    ("imagefolder", "images", "blur", "corruption: Gaussian blur (sigma 1.0) of the test images"),
    ("imagefolder", "images", "brightness", "corruption: brightness of the test images raised by 0.3"),
    ("csv", "csv", "noise", "corruption: Gaussian noise std 0.5 on the standardised test features"),
    ("csv", "reviews", "token_dropout", "corruption: 10% of the test tokens replaced by random tokens"),
    ("text", "story", None, "corruption: 10% of the test tokens replaced by random tokens"),
])
def test_shift_corrupts_the_test_split(files: dict[str, Path], source: str, file: str, shift: str | None,
                                       says: str) -> None:
    splits = source_splits(*data(source, files[file], *([f"data.shift={shift}"] if shift else [])))
    test, shifted = splits.test, splits.test_shifted
    assert splits.shift == says
    assert torch.equal(shifted.y, test.y) and shifted.x.shape == test.x.shape and shifted.x.dtype == test.x.dtype
    assert not torch.equal(shifted.x, test.x)
    if source == "imagefolder":
        assert shifted.x.min() >= 0 and shifted.x.max() <= 1
    if test.x.dtype == torch.int64:  # a share of the tokens replaced, never by or in place of padding
        pad = data_meta(DataConfig(name=source, path=str(files[file])))["pad_id"]
        assert torch.equal(shifted.x == pad, test.x == pad)
        assert 0.03 < (shifted.x != test.x)[test.x != pad].float().mean().item() < 0.2
    again = source_splits(*data(source, files[file], *([f"data.shift={shift}"] if shift else [])))
    assert torch.equal(again.test_shifted.x, shifted.x)  # seeded


@pytest.mark.parametrize(("source", "path", "shifted", "count"), [
    ("imagefolder", "images", "shifted_images", 6), ("csv", "csv", "shifted_csv", 30)])
def test_shifted_path_is_the_whole_shifted_split(files: dict[str, Path], source: str, path: str, shifted: str,
                                                 count: int) -> None:
    splits = source_splits(*data(source, files[path], f"data.shifted_path={files[shifted]}"))
    assert len(splits.test_shifted) == count
    assert splits.shift == f"your shifted_path {files[shifted].name}"


# --- augmentation -----------------------------------------------------------------------------------------------
def test_augmentation_crops_and_flips_each_batch_anew() -> None:
    augment = sources.augmenter(["crop", "flip"])
    x = torch.rand(16, 3, 8, 8)
    torch.manual_seed(0)
    first = augment(x)
    torch.manual_seed(0)
    assert torch.equal(augment(x), first) and first.shape == x.shape  # seeded by torch's global RNG
    assert not torch.equal(augment(x), first)
    flip = sources.augmenter(["flip"])(x)
    assert all(torch.equal(f, a) or torch.equal(f, a.flip(-1)) for f, a in zip(flip, x, strict=True))


def test_augmented_training_runs_the_teacher_live(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    built, reads, augmented, seen = [], [], [], []
    cache, outputs, augmenter = Study.teacher_cache, TeacherSource.outputs, sources.augmenter

    def spy_cache(self: Study, source: TeacherSource, keys: set[str]) -> object:
        built.append(keys)
        return cache(self, source, keys)

    def spy_outputs(self: TeacherSource, batch: object, keys: set[str]) -> object:
        reads.append(self.cache is not None)
        seen.append(batch.x)
        return outputs(self, batch, keys)

    def spy_augmenter(kinds: list[str]) -> object:
        augment = augmenter(kinds)
        return None if augment is None else lambda x: augmented.append(augment(x)) or augmented[-1]

    monkeypatch.setattr(Study, "teacher_cache", spy_cache)
    monkeypatch.setattr(TeacherSource, "outputs", spy_outputs)
    monkeypatch.setattr(sources, "augmenter", spy_augmenter)
    run = study(*data("imagefolder", files["images"], "data.augment=[crop, flip]"), *CNN)
    assert not run.splits.deterministic
    assert not built and reads and not any(reads)  # no cache built, the teacher ran on every batch
    assert all(any(x is a for a in augmented) for x in seen)  # ... on the augmented batch the student saw
    built.clear()
    reads.clear()
    study(*data("imagefolder", files["images"]), *CNN)  # without augmentation the cache is used
    assert built and reads and all(reads)


# --- streaming from disk ----------------------------------------------------------------------------------------
def test_streamed_inputs_equal_in_memory_ones_and_train(files: dict[str, Path]) -> None:
    fields = [*data("imagefolder", files["images"]), *CNN]
    memory = source_splits(*fields)
    run = study(*fields, "data.stream=true")
    streamed = run.splits
    for name in ("train", "val", "test", "test_shifted"):
        a, b = getattr(memory, name), getattr(streamed, name)
        assert isinstance(b.x, StreamedArray) and isinstance(a.x, torch.Tensor)
        assert len(b.x) == len(a.x) and b.x.shape == a.x.shape and b.x.dtype == a.x.dtype
        assert torch.equal(b.x[:], a.x) and torch.equal(b.y, a.y)
    index = torch.tensor([5, 0, 3, 3])
    assert torch.equal(streamed.train.x[index], memory.train.x[index])
    on_device = streamed.train.x.to("cpu")
    assert torch.equal(on_device[index], memory.train.x[index]) and len(on_device) == len(memory.train)
    files_made = sorted((cache_dir() / "streams").glob("imagefolder-*.npy"))
    assert files_made
    stamps = [f.stat().st_mtime_ns for f in files_made]
    source_splits(*fields, "data.stream=true")  # decoded once: the same files are opened again
    assert [f.stat().st_mtime_ns for f in files_made] == stamps


def test_large_inputs_stream_unless_told_not_to(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "STREAM_BYTES", 100)
    assert isinstance(source_splits(*data("csv", files["csv"])).train.x, StreamedArray)
    assert isinstance(source_splits(*data("csv", files["csv"], "data.stream=false")).train.x, torch.Tensor)
    monkeypatch.setattr(sources, "STREAM_BYTES", 1 << 30)
    assert isinstance(source_splits(*data("csv", files["csv"])).train.x, torch.Tensor)


# --- bad input --------------------------------------------------------------------------------------------------
BAD = [
    ("missing", ["data.name=csv", "data.path={tmp}/nothing.csv"], "data.path: no file or folder"),
    ("target", ["data.name=csv", "data.path={csv}", "data.target=lable"],
     "data.target: no column 'lable' in t.csv; columns: a, b, label"),
    ("size", ["data.name=imagefolder", "data.path={mixed}", *CNN],
     "data.image_size: image cat/001.png is 8x8 but cat/000.png is 12x10; set data.image_size"),
    ("shift", ["data.name=csv", "data.path={csv}", "data.shift=blur"],
     "data.shift: 'blur' does not apply to tabular data; allowed: noise"),
    ("augment", ["data.name=csv", "data.path={csv}", "data.augment=[flip]"],
     "data.augment: it is for image augmentation, but csv reads tabular data from t.csv; leave it empty"),
    ("mixed columns", ["data.name=csv", "data.path={mixed_csv}"],
     "data.columns: m.csv has text column(s) text beside others"),
    ("split value", ["data.name=csv", "data.path={dev_csv}"],
     "data.path: split 'dev' in dev.csv; allowed: train, val, validation, test"),
    ("short text", ["data.name=text", "data.path={short}", *TRANSFORMER],
     "data.max_length: short.txt makes 1 sequence(s) of max_length + 1 = 65 tokens; at least 3 are needed"),
    ("not saved", ["data.name=hf_disk", "data.path={csv}"], "data.path: t.csv is not a dataset saved with"),
    ("numeric target", ["data.name=csv", "data.path={csv}", "data.target=b", "data.columns=[a]"],
     "data.target: the labels in t.csv are numbers like"),
]


@pytest.fixture
def bad_files(tmp_path: Path, files: dict[str, Path]) -> dict[str, Path]:
    write_images(tmp_path / "mixed", 2)
    write_images(tmp_path / "mixed", 1, size=(12, 10), seed=3)
    frame = table()
    frame.assign(text="words").to_csv(tmp_path / "m.csv", index=False)
    frame.assign(split="dev").to_csv(tmp_path / "dev.csv", index=False)
    (tmp_path / "short.txt").write_text("too short for three sequences")
    return {"tmp": tmp_path, "csv": files["csv"], "mixed": tmp_path / "mixed", "mixed_csv": tmp_path / "m.csv",
            "dev_csv": tmp_path / "dev.csv", "short": tmp_path / "short.txt"}


@pytest.mark.parametrize(("case", "fields", "message"), BAD, ids=[case for case, *_ in BAD])
def test_bad_input_is_one_line_exit_2_and_logs_nothing(
    bad_files: dict[str, Path], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, case: str,
    fields: list[str], message: str,
) -> None:
    fields = [f.format(**bad_files) for f in fields]
    with pytest.raises(ConfigError) as err:
        tiny_config(*fields)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    raw: dict[str, dict[str, object]] = {}
    for item in [*TINY, *fields]:
        key, value = item.split("=", 1)
        section, field = key.split(".")
        raw.setdefault(section, {})[field] = yaml.safe_load(value)
    monkeypatch.chdir(bad_files["tmp"])
    (bad_files["tmp"] / "study.yaml").write_text(yaml.safe_dump(raw))
    assert main(["run", "study.yaml", "--no-progress"]) == 2
    out = capsys.readouterr().err
    assert out.startswith(f"kdx: error: {message}") and out.count("\n") == 1, out
    assert not (bad_files["tmp"] / "mlflow.db").exists() and not (bad_files["tmp"] / "mlruns").exists()


def test_a_source_takes_only_its_own_fields(files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"^data\.image_size: it is for the size of images, but text reads"):
        data_meta(DataConfig(name="text", path=str(files["story"]), image_size=8))
    images = data_meta(DataConfig(name="imagefolder", path=str(files["images"]), tokenizer="a/teacher"))
    assert images["modality"] == "image"  # a Hugging Face teacher's tokenizer, filled in for any data, is no error
    with pytest.raises(ValueError, match=r"^data\.shift: the shifted test split is your data\.shifted_path"):
        data_meta(DataConfig(name="csv", path=str(files["csv"]), shifted_path=str(files["shifted_csv"]),
                             shift="noise"))


# --- the benchmark ----------------------------------------------------------------------------------------------
def test_streaming_benchmark_smoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_streaming.py", "--smoke"])
    runpy.run_path(str(ROOT / "benchmarks" / "bench_streaming.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "streamed/in-memory epoch time: " in out and out.count("peak memory added") == 2


def test_paired_folders_are_the_views_of_a_cross_modal_study(tmp_path: Path) -> None:
    rgb, depth = write_images(tmp_path / "rgb", 8), write_images(tmp_path / "depth", 8, gray=True, seed=1)
    fields = ["data.name=imagefolder", f"data.path={rgb}", f"data.paired_path={depth}"]
    meta = data_meta(tiny_config(*fields).data)
    assert meta["input_shape"] == (4, 8, 8) and meta["views"] == {"rgb": (0, 3), "depth": (3, 4)}
    run = study(*fields, "distill.mechanism=cross_modal", "distill.teacher_view=rgb", "distill.student_view=depth",
                "distill.align_epochs=1", "train.epochs=2", *[f"{role}.{key}" for role in ("teacher", "student")
                                                                 for key in ("name=cnn2d", "width=4", "depth=1")])
    x = run.splits.train.x
    assert x.shape[1] == 4 and torch.all(x[:, 3] >= 0)  # RGB then the grey sensor, per sample
    runs = {r.tags["kd.role"]: r for r in run.tracker.find_runs({"kd.study_id": run.study_id})}
    assert runs["teacher"].tags["kd.view"] == "rgb" and runs["student"].tags["kd.view"] == "depth"
    (depth / "eel" / "007.png").unlink()
    with pytest.raises(ConfigError, match=r"^data\.paired_path: eel/007\.png has no partner in depth"):
        tiny_config(*fields)
