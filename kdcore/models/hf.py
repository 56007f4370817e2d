"""Hugging Face transformers models: ``name: hf`` with ``path:`` a folder saved with ``save_pretrained`` or a hub id.

The task comes from the model's config and the data: a causal language model when its ``architectures`` name
one (``...ForCausalLM``, ``...LMHeadModel``; without architectures, when its vocabulary is the data's classes
and the inputs are tokens), image classification for (C, H, W) inputs, else sequence classification.
``kwargs`` override the config, and ``width`` / ``depth`` set its hidden size and layer count; any override
builds the model from the changed config with fresh weights (smaller assistants and students of one family),
none loads the saved weights.

Every model returns the toolkit's :class:`ModelOutput`: ``block1`` ... ``blockN`` are the hidden states after
each layer, channels-first (B, hidden, T) as the built-in transformer's; ``penultimate`` is the last hidden
state (B, hidden, T) of a causal LM, the pooled vector (B, hidden) of a classifier (the first token of an
encoder, the last non-pad token of a decoder, the input of an image classifier's head). Attention runs in
the eager implementation, which returns the probabilities, with attention dropout off so that every map is
a distribution.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdcore.models.base import ModelOutput, ModelSourceError
from kdcore.models.imported import HookedModel, one_line, require_package
from kdcore.registry import register_model

CAUSAL, SEQUENCE, IMAGE = "causal language model", "sequence classifier", "image classifier"
AUTO_CLASSES = {CAUSAL: "AutoModelForCausalLM", SEQUENCE: "AutoModelForSequenceClassification",
                IMAGE: "AutoModelForImageClassification"}
CAUSAL_ARCHITECTURES = ("ForCausalLM", "LMHeadModel")
CLASSIFIER_ARCHITECTURES = ("ForSequenceClassification", "ForImageClassification")
ATTENTION_DROPOUT = ("attn_pdrop", "attention_probs_dropout_prob", "attention_dropout")  # GPT-2, BERT/ViT, Llama
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def load_config(path: str) -> Any:
    """The ``PretrainedConfig`` of a folder saved with ``save_pretrained`` or of a hub id (no weights read)."""
    transformers = require_package("transformers", "hf", "hf")
    folder = Path(path).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelSourceError("path", f"{path} has no config.json; save the model with save_pretrained")
        source = str(folder)
    elif HUB_ID.fullmatch(path):
        source = path
    else:
        raise ModelSourceError("path", f"no folder {path!r}; give a folder saved with save_pretrained, or a hub id")
    try:
        return transformers.AutoConfig.from_pretrained(source)
    except Exception as err:  # offline, unknown repository, unreadable config.json: the same to the user
        where = "cannot read its config" if folder.is_dir() else "no such folder here, and the hub cannot give it"
        raise ModelSourceError("path", f"{path}: {where} ({one_line(err)})") from None


def task_of(config: Any, input_shape: tuple[int, ...], num_classes: int) -> str:
    """What the model does with the data: causal LM, image or sequence classifier (see the module docstring)."""
    if len(input_shape) == 3:
        return IMAGE
    if len(input_shape) != 1:
        raise ModelSourceError("name", f"model hf reads token ids (T,) or images (C, H, W); the data's inputs are "
                                       f"{tuple(input_shape)}")
    architectures = config.architectures or []
    if architectures:
        causal = any(a.endswith(CAUSAL_ARCHITECTURES) for a in architectures)
    else:
        causal = getattr(config, "vocab_size", None) == num_classes
    return CAUSAL if causal else SEQUENCE


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)


def resize(config: Any, width: int | None, depth: int | None) -> None:
    """Set the hidden size (heads keep their size where it divides, the MLP scales with it) and the layer count.

    The canonical names cover BERT-style and GPT-2-style configs alike: a config's ``attribute_map`` sends
    ``hidden_size`` to ``n_embd`` and ``num_hidden_layers`` to ``n_layer``.
    """
    if depth is not None:
        if not hasattr(config, "num_hidden_layers"):
            raise ModelSourceError("depth", f"{type(config).__name__} has no layer count (num_hidden_layers)")
        config.num_hidden_layers = depth
    if width is None:
        return
    if not hasattr(config, "hidden_size") or not hasattr(config, "num_attention_heads"):
        raise ModelSourceError("width", f"{type(config).__name__} has no hidden_size and num_attention_heads")
    old_width, old_heads = config.hidden_size, config.num_attention_heads
    head_dim = max(1, old_width // old_heads)
    heads = width // head_dim if width % head_dim == 0 and width >= head_dim else _largest_divisor(width, old_heads)
    config.hidden_size, config.num_attention_heads = width, heads
    for key in ("intermediate_size", "n_inner"):  # the MLP keeps its ratio to the hidden size
        if getattr(config, key, None):
            setattr(config, key, max(1, round(getattr(config, key) * width / old_width)))
    if getattr(config, "head_dim", None):
        config.head_dim = width // heads
    if getattr(config, "num_key_value_heads", None):
        config.num_key_value_heads = _largest_divisor(heads, config.num_key_value_heads)


def prepared_config(spec: Any, input_shape: tuple[int, ...], num_classes: int) -> tuple[Any, str, bool]:
    """(the config with the spec's overrides and the data's sizes, the task, whether weights are fresh)."""
    config = load_config(spec.path)
    for key, value in spec.kwargs.items():
        if not hasattr(config, key):
            raise ModelSourceError("kwargs", f"{type(config).__name__} has no setting {key!r}")
        setattr(config, key, value)
    resize(config, spec.width, spec.depth)
    task = task_of(config, input_shape, num_classes)
    fresh = bool(spec.kwargs) or spec.width is not None or spec.depth is not None
    if task == CAUSAL:
        if config.vocab_size != num_classes:
            raise ModelSourceError("path", f"{spec.path} predicts {config.vocab_size} tokens (vocab_size); the data "
                                           f"has {num_classes} token classes")
        config.use_cache = False  # training never generates
    else:
        fine_tuned = any(a.endswith(CLASSIFIER_ARCHITECTURES) for a in config.architectures or [])
        if fine_tuned and not fresh and config.num_labels != num_classes:
            raise ModelSourceError("path", f"{spec.path} classifies {config.num_labels} labels; the data has "
                                           f"{num_classes} classes (give a model fine-tuned on them, or its base)")
        config.num_labels = num_classes
    if task == IMAGE:
        _check_image_size(config, spec.path, input_shape)
    else:
        positions = getattr(config, "max_position_embeddings", None)
        if positions is not None and positions < input_shape[0]:
            raise ModelSourceError("path", f"{spec.path} reads at most {positions} tokens; the data's sequences "
                                           f"have {input_shape[0]}")
    if task == SEQUENCE and getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = getattr(config, "eos_token_id", None)  # GPT-style tokenizers pad with end-of-text
    for key in ATTENTION_DROPOUT:
        if hasattr(config, key):
            setattr(config, key, 0.0)
    return config, task, fresh


def _check_image_size(config: Any, path: str, input_shape: tuple[int, ...]) -> None:
    channels, height, width = input_shape
    size = getattr(config, "image_size", None)
    side = tuple(size) if isinstance(size, (list, tuple)) else (size, size) if size else (height, width)
    wanted = (getattr(config, "num_channels", channels), *side)
    if wanted != (channels, height, width):
        raise ModelSourceError("path", f"{path} takes {'x'.join(map(str, wanted))} images; the data's are "
                                       f"{channels}x{height}x{width} (kwargs num_channels and image_size build "
                                       "it for them, with fresh weights)")


def decoder_only(config: Any) -> bool:
    """Whether a model attends causally: its type has no masked-LM (encoder) form, as GPT-2 and Llama."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def build_network(spec: Any, input_shape: tuple[int, ...], num_classes: int, weights: bool = True) -> HFModel:
    """The wrapped model; ``weights=False`` builds it from its config alone (for sizing on the meta device)."""
    transformers = require_package("transformers", "hf", "hf")
    config, task, fresh = prepared_config(spec, input_shape, num_classes)
    auto = getattr(transformers, AUTO_CLASSES[task])
    try:
        if fresh or not weights:
            net = auto.from_config(config, attn_implementation="eager")
        else:
            net = auto.from_pretrained(spec.path, config=config, attn_implementation="eager")
            net = net.float()  # a checkpoint saved in half precision trains in float32, as every model here
    except Exception as err:
        raise ModelSourceError("path", f"cannot build a {task} from {spec.path} ({one_line(err)})") from None
    head = "classifier" if task == IMAGE and isinstance(getattr(net, "classifier", None), nn.Module) else None
    return HFModel(net, spec.features, spec.path, task, head)


class HFModel(HookedModel):
    """A transformers model (``.net``, a ``PreTrainedModel``) with the project's contract.

    ``tokenizer_path`` is where its tokenizer is saved (the model's own path). Its ``attention_logits`` are
    the log of the attention probabilities: transformers does not return the scores before the softmax, and
    log-probabilities are scores whose softmax gives the same maps. Keys the model masks (later positions of a
    decoder, padding) are -inf; a probability that underflows elsewhere is read as float32's smallest normal.
    """

    def __init__(self, net: nn.Module, features: dict[str, str], tokenizer_path: str, task: str,
                 head: str | None) -> None:
        super().__init__(net, features, head)
        self.tokenizer_path, self.task = tokenizer_path, task
        config = net.config
        self.pad_token_id = getattr(config, "pad_token_id", None) if task != IMAGE else None
        self.causal = task == CAUSAL or (task == SEQUENCE and decoder_only(config))

    def _feature(self, name: str, value: torch.Tensor) -> torch.Tensor:
        if value.dim() == 3:
            value = value.transpose(1, 2)  # (B, T, hidden) -> (B, hidden, T), as the built-in transformer's
        return value if self.task == CAUSAL else super()._feature(name, value)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        if self.task == IMAGE:
            ids, keys, inputs = None, None, {"pixel_values": x.float()}  # (B, C, H, W)
        else:
            ids = x.long()  # (B, T); shape probes pass zeros
            keys = ids != self.pad_token_id if self.pad_token_id is not None else None  # (B, T) True = attended
            inputs = {"input_ids": ids} | ({"attention_mask": keys.long()} if keys is not None else {})
        self._captured = {}
        out = self.net(**inputs, output_hidden_states=True, output_attentions=True)
        hooked, self._captured = self._captured, {}
        hidden = out.hidden_states  # embeddings, then one per layer
        features = {f"block{i}": self._feature(f"block{i}", h) for i, h in enumerate(hidden[1:], start=1)}
        features["penultimate"] = self._pooled(hidden[-1], ids)
        features |= hooked
        probs = list(out.attentions) if getattr(out, "attentions", None) else None
        logits = attention_log_probs(probs, keys, self.causal) if probs else None
        return ModelOutput(out.logits, features, probs, logits)

    def _pooled(self, last: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
        """The penultimate feature from the last hidden state (see the module docstring); an image classifier's
        head input, hooked, replaces it."""
        if self.task == CAUSAL:
            return last.transpose(1, 2)  # (B, hidden, T)
        if self.task == IMAGE:
            return self._feature("penultimate", last)  # mean over patches or positions: (B, hidden)
        if not self.causal:
            return last[:, 0]  # the first ([CLS]) token, (B, hidden)
        t = last.shape[1]
        if self.pad_token_id is None or ids is None:
            return last[:, -1]
        positions = torch.arange(t, device=last.device) * (ids != self.pad_token_id)  # (B, T)
        return last[torch.arange(last.shape[0], device=last.device), positions.argmax(-1)]


def attention_log_probs(probs: list[torch.Tensor], keys: torch.Tensor | None, causal: bool) -> list[torch.Tensor]:
    """Scores whose softmax gives each (B, H, T, T) map: log-probabilities, -inf at masked keys.

    The log is taken of the probability clamped to float32's smallest normal, so a key whose probability
    underflows keeps a finite score and no NaN reaches a gradient; a query whose keys are all masked keeps them
    all, as the model's own softmax spreads it evenly over them.
    """
    t = probs[0].shape[-1]
    masked = torch.zeros(1, 1, t, t, dtype=torch.bool, device=probs[0].device)
    if causal:
        masked = masked | torch.ones(t, t, dtype=torch.bool, device=masked.device).triu(1)
    if keys is not None:
        masked = masked | ~keys[:, None, None, :]  # (B, 1, T, T)
    masked = masked & ~masked.all(dim=-1, keepdim=True)
    return [p.clamp_min(torch.finfo(p.dtype).tiny).log().masked_fill(masked, float("-inf")) for p in probs]


def skeleton(input_shape: tuple[int, ...], num_classes: int, spec: Any) -> HFModel:
    """The model from its config alone, no weight file read: what sizing builds on the meta device."""
    return build_network(spec, tuple(input_shape), num_classes, weights=False)


def pretrained(spec: Any) -> bool:
    """Whether the spec loads the folder's own weights (no override builds it afresh from its config)."""
    return not (spec.kwargs or spec.width is not None or spec.depth is not None)


@register_model("hf", input_rank=None, inputs="any", source=True, skeleton=skeleton, pretrained=pretrained,
                path_help="a folder saved with save_pretrained, or a hub id")
def hf(input_shape: tuple[int, ...], num_classes: int, spec: Any) -> HFModel:
    """A Hugging Face transformers model (path: folder or hub id): LM, sequence or image classifier, attentions."""
    return build_network(spec, tuple(input_shape), num_classes)
