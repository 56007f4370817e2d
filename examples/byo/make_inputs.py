"""Write the small inputs of the bring-your-own recipes, as a user would bring them: files and folders.

    python -m examples.byo.make_inputs [--out examples/byo/inputs]

- ``reviews.csv``: generated product reviews (a ``text`` and a ``label`` column, three classes) and
  ``tiny-bert/``: a BERT-style sequence classifier (4 layers, hidden 64, fresh weights) with its tokenizer;
- ``stories.txt``: generated sentences for next-token prediction and ``tiny-gpt2/``: a GPT-2-style causal LM
  (4 layers, hidden 64, fresh weights) with its tokenizer;
- ``shapes/``: an image folder of generated 16x16 PNGs, one subfolder per shape;
- ``sensors.parquet``: a table of 12 sensor readings and a machine state, with a ``split`` column.

Everything is seeded and generated here: nothing is downloaded. The models are saved with
``save_pretrained``, so the recipes load them as they would load a model of yours.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "inputs"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# --- reviews: text classification ---------------------------------------------------------------------
PRODUCTS = ["phone", "laptop", "kettle", "camera", "chair", "lamp", "blender", "headset", "printer", "watch"]
WORDS = {
    "negative": ["broken", "awful", "slow", "noisy", "useless", "flimsy", "disappointing", "returned"],
    "neutral": ["average", "okay", "fine", "standard", "expected", "ordinary", "decent", "plain"],
    "positive": ["great", "excellent", "fast", "quiet", "reliable", "sturdy", "lovely", "recommended"],
}
FILLER = ["the", "this", "it", "was", "is", "really", "quite", "and", "but", "after", "a", "week", "my", "very"]


def review(label: str, rng: random.Random) -> str:
    """A sentence whose sentiment words mostly, not always, agree with ``label`` (so the task is not trivial)."""
    words = [rng.choice(FILLER) for _ in range(rng.randint(4, 9))] + [rng.choice(PRODUCTS)]
    for _ in range(rng.randint(2, 3)):
        words.append(rng.choice(WORDS[label]))
    if rng.random() < 0.5:  # one word of another class
        words.append(rng.choice(WORDS[rng.choice([k for k in WORDS if k != label])]))
    rng.shuffle(words)
    return " ".join(words)


def write_reviews(out: Path, rng: random.Random, rows: int = 1500) -> None:
    import pandas as pd

    labels = [rng.choice(list(WORDS)) for _ in range(rows)]
    pd.DataFrame({"text": [review(label, rng) for label in labels], "label": labels}).to_csv(
        out / "reviews.csv", index=False)


# --- stories: causal language modelling ----------------------------------------------------------------
NAMES = ["ana", "ben", "chen", "dara", "eli", "fatima", "goran", "hana"]
ANIMALS = ["cat", "dog", "fox", "owl", "horse", "goat"]
PLACES = ["garden", "forest", "kitchen", "river", "market", "hill"]
VERBS = ["saw", "fed", "followed", "found", "painted", "called"]


def story(rng: random.Random) -> str:
    name, animal, place = rng.choice(NAMES), rng.choice(ANIMALS), rng.choice(PLACES)
    return (f"{name} went to the {place} . {name} {rng.choice(VERBS)} a {animal} in the {place} . "
            f"the {animal} was {rng.choice(['happy', 'hungry', 'tired', 'small'])} .")


def write_stories(out: Path, rng: random.Random, count: int = 2500) -> None:
    (out / "stories.txt").write_text("\n".join(story(rng) for _ in range(count)) + "\n")


# --- the Hugging Face models and their tokenizers -------------------------------------------------------
def word_tokenizer(texts: list[str], **special: str):
    """A word-level tokenizer over the words of ``texts`` (whitespace split), as a transformers tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS)}
    for word in sorted({w for text in texts for w in text.split()}):
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", **special)


def write_bert(out: Path) -> None:
    import pandas as pd
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = word_tokenizer(pd.read_csv(out / "reviews.csv")["text"].tolist(), cls_token="[CLS]",
                               sep_token="[SEP]", mask_token="[MASK]")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=64, num_labels=len(WORDS),
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(out / "tiny-bert")
    tokenizer.save_pretrained(out / "tiny-bert")


def write_gpt2(out: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = word_tokenizer((out / "stories.txt").read_text().splitlines())
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=64, n_layer=4, n_head=4,
                        pad_token_id=tokenizer.pad_token_id, bos_token_id=None, eos_token_id=None)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(out / "tiny-gpt2")
    tokenizer.save_pretrained(out / "tiny-gpt2")


# --- shapes: an image folder ----------------------------------------------------------------------------
SHAPES = ("circle", "square", "triangle", "cross")


def shape_image(kind: str, rng: np.random.Generator, size: int = 16):
    """One RGB image: a shape of random colour, size and place on a noisy background."""
    from PIL import Image, ImageDraw

    background = tuple(int(v) for v in rng.integers(0, 90, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(4, 7))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    colour = tuple(int(v) for v in rng.integers(130, 256, 3))
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        draw.line((cx - r, cy - r, cx + r, cy + r), fill=colour, width=2)
        draw.line((cx - r, cy + r, cx + r, cy - r), fill=colour, width=2)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-25, 26, (size, size, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def write_shapes(out: Path, rng: np.random.Generator, per_class: int = 150) -> None:
    for kind in SHAPES:
        folder = out / "shapes" / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape_image(kind, rng).save(folder / f"{kind}_{i:03d}.png")


# --- sensors: a parquet table ---------------------------------------------------------------------------
def write_sensors(out: Path, rows: int = 3000) -> None:
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=12, n_informative=8, n_redundant=2, n_classes=4,
                               n_clusters_per_class=2, class_sep=1.0, flip_y=0.03, random_state=0)
    table = pd.DataFrame(x * 3 + 20, columns=[f"sensor_{i:02d}" for i in range(12)])
    table["state"] = np.array(["idle", "running", "overheating", "jammed"])[y]
    table["split"] = np.random.default_rng(0).choice(["train", "val", "test"], size=rows, p=[0.7, 0.15, 0.15])
    table.to_parquet(out / "sensors.parquet", index=False)


def make_inputs(out: Path = DEFAULT_OUT, scale: float = 1.0) -> Path:
    """Write every input of the recipes into ``out`` (created; existing files are replaced); ``scale`` < 1
    writes that share of the rows and images (a quick check that the recipes run)."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    write_reviews(out, rng, rows=round(1500 * scale))
    write_stories(out, rng, count=round(2500 * scale))
    write_bert(out)
    write_gpt2(out)
    write_shapes(out, np.random.default_rng(0), per_class=round(150 * scale))
    write_sensors(out, rows=round(3000 * scale))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to write (default {DEFAULT_OUT})")
    print(f"wrote {make_inputs(parser.parse_args().out)}")


if __name__ == "__main__":
    main()
