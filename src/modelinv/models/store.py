"""Self-describing checkpoints (safetensors weights + JSON config) and a cache keyed by what produced them.

A checkpoint is a directory holding `weights.safetensors` and `model.json` (architecture, arguments,
training request, data digest, seed, metrics, versions). Loading never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError
from modelinv.models.layered import LayeredNet
from modelinv.models.registry import build_model
from modelinv.models.trainer import TrainConfig, TrainingHooks, accuracy, train_classifier
from modelinv.seeding import seeded
from modelinv.versions import versions

FORMAT = "modelinv-checkpoint/1"
WEIGHTS, CONFIG = "weights.safetensors", "model.json"


def default_cache_dir() -> Path:
    """`$MODELINV_CACHE`, else `~/.cache/modelinv`."""
    return Path(os.environ.get("MODELINV_CACHE") or Path.home() / ".cache" / "modelinv")


@dataclass(frozen=True)
class ModelRequest:
    """Everything that determines a trained model; its hash is the cache key."""

    role: str
    arch: str
    input_shape: tuple[int, ...]
    num_classes: int
    data_digest: str
    seed: int
    args: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    defense: dict[str, Any] = field(default_factory=dict)
    """A training-time defense as {name, params, layer}; empty: none (and then left out of the key,
    so undefended models keep the keys they had before defenses existed)."""
    threads: int = field(default_factory=torch.get_num_threads)
    """torch's intra-op thread count at training time: the same seed trains different bits at 1 and 2
    threads (reductions split differently), so models trained at different counts are different artifacts."""

    def key(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k != "defense" or v}
        blob = json.dumps(fields, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def module_digest(module: nn.Module) -> str:
    """SHA-256 of a module's weights: keys artifacts (e.g. a target-guided GAN) that depend on a trained model."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(directory: Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write weights and config atomically (a temporary directory renamed into place)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory.parent))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS), metadata={"format": FORMAT})
    config = {"format": FORMAT, **model.spec, **meta, "versions": versions()}
    (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True, default=list))
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    return directory


def read_config(directory: Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise ModelinvError(f"checkpoint not found: {path}")
    try:
        config = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelinvError(f"corrupted checkpoint file {path}: not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelinvError(f"corrupted checkpoint file {path}: not a {FORMAT} config")
    missing = [k for k in ("arch", "input_shape", "num_classes") if k not in config]
    if missing:
        raise ModelinvError(f"corrupted checkpoint file {path}: missing field '{missing[0]}'")
    return config


def load_weights(path: Path, model: nn.Module, arch: str) -> None:
    """Load a safetensors state dict into `model`; missing, corrupted or mismatched files give one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise ModelinvError(f"checkpoint not found: {path}")
    try:
        state = load_file(str(path))
    except Exception as err:  # safetensors reports corruption with several exception types
        raise ModelinvError(f"corrupted checkpoint file {path}: {str(err).splitlines()[0]}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        reason = " ".join(str(err).split())[:200]
        raise ModelinvError(f"checkpoint {path} does not match architecture '{arch}': {reason}") from None


def load_checkpoint(directory: Path, expect_key: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the architecture named in `model.json` and load its safetensors weights."""
    directory = Path(directory)
    config = read_config(directory)
    if expect_key is not None and config.get("request_key") != expect_key:
        raise ModelinvError(f"checkpoint {directory / CONFIG} was produced by a different request; delete it to retrain")
    model = build_model(config["arch"], tuple(config["input_shape"]), config["num_classes"], **config.get("args", {}))
    load_weights(directory / WEIGHTS, model, config["arch"])
    model.eval()
    return model, config


INDEX = "artifact.json"


def cached(
    request: ModelRequest,
    produce: Callable[[], tuple[dict[str, nn.Module], dict[str, Any]]],
    cache_dir: Path | None = None,
) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """The named modules `request` describes: loaded from the cache, or produced (built and trained) and stored.

    An artifact is a directory named after the request's hash holding one checkpoint per module and an
    index; it is written to a temporary directory and renamed, so an interrupted run stores nothing.
    The metadata has `cached`, `path`, `request`, `metrics` and `seconds`.
    """
    directory = Path(cache_dir or default_cache_dir()) / "models" / f"{request.arch}-{request.key()}"
    index = directory / INDEX
    if index.exists():
        try:
            meta = json.loads(index.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelinvError(f"corrupted checkpoint file {index}: not valid JSON ({err})") from None
        modules = {name: load_checkpoint(directory / name, expect_key=request.key())[0] for name in meta["modules"]}
        return modules, {**meta, "cached": True, "path": str(directory)}
    start = time.perf_counter()
    with seeded(request.seed):  # deterministic initialisation and training; the caller's random state is kept
        modules, metrics = produce()
    meta = {"request": asdict(request), "request_key": request.key(), "metrics": metrics, "seconds": time.perf_counter() - start}
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory.parent))
    for name, module in modules.items():
        save_checkpoint(tmp / name, module, meta)
    (tmp / INDEX).write_text(json.dumps({**meta, "modules": sorted(modules)}, indent=2, default=list))
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    return modules, {**meta, "cached": False, "path": str(directory)}


def train_or_load(
    request: ModelRequest,
    data: Dataset,
    test: Dataset | None = None,
    cache_dir: Path | None = None,
    hooks: TrainingHooks | None = None,
) -> tuple[LayeredNet, dict[str, Any]]:
    """The classifier `request` describes: from the cache if present, else trained on `data` and cached.

    A training-time defense changes training through `hooks` (the defense object, built by the caller; see
    modelinv.defenses), and `request.defense` records it in the cache key (its `training_spec()`). Hooks
    are used only when `request.defense` is set: a defense with an empty spec leaves training unchanged.
    Accuracies are then those of the deployed, defended model. The metadata's `path` is the checkpoint
    directory; `metrics` has val_acc (and test_acc when `test` is given) and the hooks' own (epsilon and
    delta for DP-SGD).
    """
    if data.digest() != request.data_digest:
        raise ValueError("request.data_digest does not match the training data")
    if request.defense and hooks is None:
        raise ValueError(f"request.defense names '{request.defense.get('name')}' but no training hooks were given")
    hooks = hooks if request.defense else None

    def produce():
        model = build_model(request.arch, request.input_shape, request.num_classes, **request.args)
        desc = f"training {request.role} {request.arch}"
        metrics = train_classifier(model, data, TrainConfig(**request.train), request.seed, desc=desc, hooks=hooks)
        if test is not None:
            metrics["test_acc"] = accuracy(hooks.deployed(model) if hooks else model, test)
        return {"model": model}, metrics

    modules, meta = cached(request, produce, cache_dir)
    return modules["model"], {**meta, "path": str(Path(meta["path"]) / "model")}
