"""A character-level CLIPTokenizer written from a vocabulary we generate, so tiny pipelines
build offline (the usual tokenizers come from a model hub)."""
from __future__ import annotations

import json
import string
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# CLIP lower-cases text, so upper-case letters are not needed.
CHARS = string.ascii_lowercase + string.digits + string.punctuation


def write_char_vocab(folder: str | Path, max_length: int = 77) -> Path:
    """Write vocab.json / merges.txt / tokenizer_config.json for a char-level CLIPTokenizer.

    With no merges, CLIP's BPE leaves every character a token; it marks the last character of
    each word with '</w>', so each character appears twice in the vocabulary.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {}
    for ch in CHARS:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    from attribcheck.outputs import write_atomic

    write_atomic(folder / "vocab.json", json.dumps(vocab, indent=0, sort_keys=True), "tokenizer")
    write_atomic(folder / "merges.txt", "#version: 0.2\n", "tokenizer")
    config = {"model_max_length": max_length, "bos_token": BOS, "eos_token": EOS,
              "unk_token": EOS, "pad_token": EOS, "tokenizer_class": "CLIPTokenizer"}
    write_atomic(folder / "tokenizer_config.json", json.dumps(config, indent=2), "tokenizer")
    return folder


def char_tokenizer(folder: str | Path, max_length: int = 77):
    from transformers import CLIPTokenizer

    write_char_vocab(folder, max_length)
    return CLIPTokenizer.from_pretrained(str(folder))
