"""Tokenisers of the text targets trained here: words for the sentence encoder, characters for the language model.

A tokeniser is public knowledge (it ships with the model, as BERT's WordPiece vocabulary does): an attacker uses
it to submit its own texts. Both are rebuilt from their `spec()` (a JSON-able dict) when a cached model is loaded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

from modelinv.data.text import words
from modelinv.errors import ModelinvError

PAD, BOS, EOS, UNK = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
SPECIALS = (PAD, BOS, EOS, UNK)
"""Special tokens, ids 0..3 in every tokeniser: padding is id 0."""


def _pad(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.zeros(len(rows), width, dtype=torch.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.int64)
    return out


class Tokenizer:
    """Ids of `tokens` (specials first); `encode` gives padded (N, T) id tensors, pad id 0."""

    kind: str = ""

    def __init__(self, tokens: Sequence[str], max_length: int):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ModelinvError(f"a {self.kind} vocabulary must start with {', '.join(SPECIALS)}")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.tokens)

    def split(self, text: str) -> list[str]:
        raise NotImplementedError

    def ids(self, text: str, eos: bool = False) -> list[int]:
        """BOS, the text's tokens (unknown ones as UNK), EOS if asked; cut to `max_length`."""
        unk = self.index[UNK]
        body = [self.index.get(t, unk) for t in self.split(text)]
        return ([self.index[BOS]] + body)[: self.max_length - int(eos)] + ([self.index[EOS]] if eos else [])

    def encode(self, texts: Sequence[str], eos: bool = False) -> torch.Tensor:
        """Token ids of `texts`, padded with 0.

        Shape: (N, T), T = the longest encoding (at most max_length).
        """
        if not texts:
            raise ModelinvError("no texts to encode")
        return _pad([self.ids(t, eos) for t in texts])

    def decode(self, ids: torch.Tensor) -> list[str]:
        """The texts of an (N, T) id tensor, specials dropped."""
        joiner = " " if self.kind == "word" else ""
        return [joiner.join(self.tokens[i] for i in row.tolist() if i >= len(SPECIALS)) for row in ids]

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokens": self.tokens, "max_length": self.max_length}


class WordTokenizer(Tokenizer):
    """Lower-cased words (`modelinv.data.text.words`) of a fixed vocabulary."""

    kind = "word"

    def split(self, text: str) -> list[str]:
        return words(text)

    @classmethod
    def fit(cls, texts: Sequence[str], size: int = 8000, max_length: int = 64) -> "WordTokenizer":
        """The `size` - 4 most frequent words of `texts` (ties broken alphabetically) after the specials."""
        counts = Counter(w for t in texts for w in words(t))
        ranked = sorted(counts, key=lambda w: (-counts[w], w))[: size - len(SPECIALS)]
        return cls([*SPECIALS, *ranked], max_length)


class CharTokenizer(Tokenizer):
    """Characters of a fixed alphabet (the training texts' characters and the ten digits)."""

    kind = "char"

    def split(self, text: str) -> list[str]:
        return list(text)

    @classmethod
    def fit(cls, texts: Sequence[str], max_length: int = 256) -> "CharTokenizer":
        alphabet = sorted(set("".join(texts)) | set("0123456789"))
        return cls([*SPECIALS, *alphabet], max_length)


def tokenizer_from_spec(spec: dict[str, Any]) -> Tokenizer:
    kinds = {"word": WordTokenizer, "char": CharTokenizer}
    if spec.get("kind") not in kinds:
        raise ModelinvError(f"unknown tokeniser kind {spec.get('kind')!r}")
    return kinds[spec["kind"]](spec["tokens"], int(spec["max_length"]))
