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
from typing import Any

from safetensors.torch import load_file, save_file

from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError
from modelinv.models import build_model
from modelinv.models.layered import LayeredNet
from modelinv.models.trainer import TrainConfig, accuracy, train_classifier
from modelinv.seeding import seed_everything
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

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def save_checkpoint(directory: Path, model: LayeredNet, meta: dict[str, Any]) -> Path:
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


def load_checkpoint(directory: Path, expect_key: str | None = None) -> tuple[LayeredNet, dict[str, Any]]:
    """Rebuild the architecture named in `model.json` and load its safetensors weights."""
    directory = Path(directory)
    config = read_config(directory)
    if expect_key is not None and config.get("request_key") != expect_key:
        raise ModelinvError(f"checkpoint {directory / CONFIG} was produced by a different request; delete it to retrain")
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise ModelinvError(f"checkpoint not found: {weights}")
    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors reports corruption with several exception types
        raise ModelinvError(f"corrupted checkpoint file {weights}: {str(err).splitlines()[0]}") from None
    model = build_model(config["arch"], tuple(config["input_shape"]), config["num_classes"], **config.get("args", {}))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        reason = " ".join(str(err).split())[:200]
        raise ModelinvError(f"checkpoint {weights} does not match architecture '{config['arch']}': {reason}") from None
    model.eval()
    return model, config


def train_or_load(
    request: ModelRequest,
    data: Dataset,
    test: Dataset | None = None,
    cache_dir: Path | None = None,
) -> tuple[LayeredNet, dict[str, Any]]:
    """Return the model `request` describes: from the cache if present, else trained on `data` and cached.

    The returned metadata has `cached` (bool), `path`, and `metrics` (val_acc, test_acc when `test` is given).
    """
    if data.digest() != request.data_digest:
        raise ValueError("request.data_digest does not match the training data")
    directory = Path(cache_dir or default_cache_dir()) / "models" / f"{request.arch}-{request.key()}"
    if (directory / CONFIG).exists():
        model, meta = load_checkpoint(directory, expect_key=request.key())
        return model, {**meta, "cached": True, "path": str(directory)}
    seed_everything(request.seed)
    model = build_model(request.arch, request.input_shape, request.num_classes, **request.args)
    config = TrainConfig(**request.train)
    start = time.perf_counter()
    metrics = train_classifier(model, data, config, request.seed, desc=f"training {request.role} {request.arch}")
    if test is not None:
        metrics["test_acc"] = accuracy(model, test)
    meta = {
        "request": asdict(request),
        "request_key": request.key(),
        "metrics": metrics,
        "seconds": time.perf_counter() - start,
    }
    save_checkpoint(directory, model, meta)
    return model, {**meta, "cached": False, "path": str(directory)}
