"""Tiny Hugging Face models written to a folder with save_pretrained, for the hf model source's tests."""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = 50  # token ids of the sequence classifier's inputs
PAD = 0  # its padding id


def tiny_bert(folder: Path, num_labels: int = 3, seed: int = 0) -> Path:
    """A 2-layer BERT sequence classifier of width 32 (2 heads) over ``VOCAB`` ids, padding id ``PAD``."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, num_labels=num_labels, pad_token_id=PAD)
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def tiny_gpt2(folder: Path, vocab: int = 14, layers: int = 2, seed: int = 0) -> Path:
    """A GPT-2 causal LM of width 32 (2 heads), ``layers`` layers, 16 positions and ``vocab`` tokens (14 =
    the arithmetic dataset's)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_positions=16, n_embd=32, n_layer=layers, n_head=2,
                        bos_token_id=None, eos_token_id=None)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def tiny_vit(folder: Path, num_labels: int = 10, seed: int = 0) -> Path:
    """A 2-layer ViT image classifier of width 32 (2 heads) on 1x8x8 images (digits) in 4x4 patches."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64, num_labels=num_labels)
    ViTForImageClassification(config).save_pretrained(folder)
    return folder


def llama_7b_config(folder: Path) -> Path:
    """Only the config.json of a Llama-2-7B-shaped causal LM (hidden 4096, 32 layers, vocab 32000): no weights."""
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                vocab_size=32000, architectures=["LlamaForCausalLM"]).save_pretrained(folder)
    return folder
