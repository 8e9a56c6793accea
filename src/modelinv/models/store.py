"""Self-describing checkpoints (safetensors weights + JSON config) and a cache keyed by what produced them.

A checkpoint is a directory holding `weights.safetensors` and `model.json` (architecture, arguments,
training request, data digest, seed, metrics, versions, and `weights_sha256`, the SHA-256 of the weights
file). Loading never unpickles anything.

Integrity: loading a checkpoint hashes the bytes it loads and compares them with `weights_sha256`; a
mismatch (a flipped bit, zeroed or swapped weights, a truncated file) is a `CorruptCheckpoint` naming the
file. In the model cache (`cached`) a corrupt entry is not used: a one-line warning names the file, and the
artifact is produced again and overwrites the entry (`MODELINV_CACHE_ON_CORRUPT=error` makes it an error
instead). A checkpoint written before checksums existed (no `weights_sha256`) still loads: in the cache its
hash is recorded then, with a one-line note that this first load is unverified (trust on first use; later
loads are verified); elsewhere (a directory given to `modelinv serve`) it loads unverified, with the note.
A user's own weights file (`load_weights`, `verify_weights`) is checked against an expected hash the user
gives and against its sidecar metadata when there is one (`<file>.sha256` in `sha256sum` format, or the
`model.json` of the checkpoint directory it sits in); a mismatch is a `ModelinvError` (exit 2).

Cache key: the request's fields (`ModelRequest`), including the torch thread count, and the default dtype and
deterministic-algorithms flag when they are not torch's defaults. Not keyed, though they can change trained
bits too: torch's version, the CPU's instruction set (which kernels torch dispatches to), and modelinv's
own training code; they would invalidate every cache on each upgrade. They are recorded instead
(`versions` in `model.json`), and every result row records the SHA-256 of the weights it used, so two
results can always be told apart by the exact bits of their models.

Devices: a model is trained on the device its request names (`ModelRequest.device`; the key holds the
device's type when it is not the CPU, since a GPU trains different bits), saved from a CPU copy of its
weights, and loaded on the CPU then moved to the request's device: checkpoints are device-independent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file
from torch import nn

from modelinv.data.types import Dataset
from modelinv.devices import device_type
from modelinv.errors import ModelinvError
from modelinv.models.layered import LayeredNet
from modelinv.models.registry import build_model
from modelinv.models.trainer import TrainConfig, TrainingHooks, accuracy, train_classifier
from modelinv.seeding import seeded
from modelinv.versions import versions

FORMAT = "modelinv-checkpoint/1"
WEIGHTS, CONFIG = "weights.safetensors", "model.json"
ON_CORRUPT_ENV = "MODELINV_CACHE_ON_CORRUPT"
"""What the cache does with a corrupt entry: `retrain` (the default) or `error`."""


class CorruptCheckpoint(ModelinvError):
    """A stored file is not what its metadata records (checksum mismatch) or cannot be read; the message names it."""


def sha256_hex(data: bytes) -> str:
    """SHA-256 of `data`, as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _say(message: str) -> None:
    """A one-line warning or note on stderr."""
    print(f"modelinv: {message}", file=sys.stderr, flush=True)


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
    dtype: str = field(default_factory=lambda: str(torch.get_default_dtype()).removeprefix("torch."))
    """torch's default dtype at training time (the dtype new parameters get); keyed only when not float32."""
    deterministic: bool = field(default_factory=torch.are_deterministic_algorithms_enabled)
    """`torch.use_deterministic_algorithms` at training time (it swaps some kernels); keyed only when on."""
    device: str = "cpu"
    """The device the model is trained on and loaded onto ("cpu", "cuda", "cuda:1", "mps"); its type is keyed
    only when not the CPU (cuda:0 and cuda:1 share artifacts)."""

    UNKEYED_DEFAULTS: ClassVar[dict[str, Any]] = {"defense": {}, "dtype": "float32", "deterministic": False, "device": "cpu"}
    """Fields left out of the key when they have these values, so that requests keep the keys they had before
    the field existed (and cached models stay valid)."""

    def key(self) -> str:
        """The cache key: a hash of every field (those in `UNKEYED_DEFAULTS` only when not at their default)."""
        fields = {**asdict(self), "device": device_type(self.device)}
        fields = {k: v for k, v in fields.items() if k not in self.UNKEYED_DEFAULTS or v != self.UNKEYED_DEFAULTS[k]}
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
    """Write weights and config atomically (a temporary directory renamed into place); the config records the
    weights file's SHA-256 (`weights_sha256`)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory.parent))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}  # device-independent
    save_file(state, str(tmp / WEIGHTS), metadata={"format": FORMAT})
    config = {"format": FORMAT, **model.spec, **meta, "versions": versions(), "weights_sha256": file_sha256(tmp / WEIGHTS)}
    (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True, default=list))
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    return directory


def read_config(directory: Path) -> dict[str, Any]:
    """The checkpoint's `model.json`, checked to be a modelinv checkpoint config; one-line errors naming the file."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise ModelinvError(f"checkpoint not found: {path}")
    try:
        config = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptCheckpoint(f"corrupted checkpoint file {path}: not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CorruptCheckpoint(f"corrupted checkpoint file {path}: not a {FORMAT} config")
    missing = [k for k in ("arch", "input_shape", "num_classes") if k not in config]
    if missing:
        raise CorruptCheckpoint(f"corrupted checkpoint file {path}: missing field '{missing[0]}'")
    recorded = config.get("weights_sha256")
    if recorded is not None and not _is_sha256(recorded):
        raise CorruptCheckpoint(f"corrupted checkpoint file {path}: weights_sha256 is not a SHA-256 ({str(recorded)[:80]!r})")
    return config


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower())


def _mismatch(what: str, actual: str, expected: str, source: str) -> str:
    return f"{what}: its SHA-256 is {actual[:16]}..., {source} {expected[:16]}..."


def sidecar_sha256(path: Path) -> tuple[str, Path] | None:
    """The SHA-256 a weights file's sidecar metadata records, and that sidecar: `<file>.sha256` (`sha256sum`
    format: 64 hex digits first), else the `model.json` of the modelinv checkpoint directory the file sits in
    (when it is that checkpoint's `weights.safetensors` and the config records a hash). None when neither has one.
    A `.sha256` file that does not start with a SHA-256 is a ModelinvError naming it."""
    path = Path(path)
    side = path.with_name(path.name + ".sha256")
    if side.is_file():
        try:
            first = side.read_text(errors="strict").split(maxsplit=1)
        except (OSError, UnicodeDecodeError) as err:
            raise ModelinvError(f"unreadable checksum file {side}: {err}") from None
        if not first or not _is_sha256(first[0]):
            raise ModelinvError(f"checksum file {side} does not start with a SHA-256 (64 hex digits)")
        return first[0].lower(), side
    config = path.parent / CONFIG
    if path.name == WEIGHTS and config.is_file():
        try:
            recorded = json.loads(config.read_text()).get("weights_sha256")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            return None  # not a readable modelinv config: no hash available from it
        if _is_sha256(recorded):
            return recorded.lower(), config
    return None


def verify_weights(path: Path, expected_sha256: str | None = None, data: bytes | None = None) -> str:
    """Check a weights file against the SHA-256 it should have; return its SHA-256.

    The hashes checked: `expected_sha256` (one the user gives, e.g. from the model's publisher) and the one its
    sidecar metadata records (`sidecar_sha256`). A mismatch with either is a ModelinvError naming the file (the
    CLI exits with code 2); with no hash available the file is not verified, and its hash is still returned for
    the results' provenance. `data`: the file's bytes when the caller has already read them (then exactly the
    bytes it loads are checked). For any model file a user brings (safetensors, TorchScript, ONNX).
    """
    path = Path(path)
    if expected_sha256 is not None and not _is_sha256(expected_sha256.strip()):
        raise ModelinvError(f"expected SHA-256 of {path} is not 64 hex digits: {expected_sha256[:80]!r}")
    if data is None:
        if not path.is_file():
            raise ModelinvError(f"weights file not found: {path}")
        actual = file_sha256(path)
    else:
        actual = sha256_hex(data)
    if expected_sha256 is not None and actual != expected_sha256.strip().lower():
        raise ModelinvError(_mismatch(f"weights file {path} is corrupt or not the expected file", actual, expected_sha256.strip().lower(), "the expected SHA-256 given is"))
    side = sidecar_sha256(path)
    if side is not None and actual != side[0]:
        raise ModelinvError(_mismatch(f"weights file {path} is corrupt or not the expected file", actual, side[0], f"{side[1]} records"))
    return actual


def load_weights(path: Path, model: nn.Module, arch: str, expected_sha256: str | None = None) -> str:
    """Load a safetensors state dict into `model` and return the file's SHA-256.

    The bytes loaded are checked first as `verify_weights` does (against `expected_sha256` and any sidecar
    hash). Missing, corrupted or mismatched files give one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelinvError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    digest = verify_weights(path, expected_sha256, data=data)
    _load_state(path, data, model, arch)
    return digest


def _load_state(path: Path, data: bytes, model: nn.Module, arch: str) -> None:
    try:
        state = load_safetensors(data)
    except Exception as err:  # safetensors reports corruption with several exception types
        raise CorruptCheckpoint(f"corrupted checkpoint file {path}: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        reason = " ".join(str(err).split())[:200]
        raise ModelinvError(f"checkpoint {path} does not match architecture '{arch}': {reason}") from None


def _record_hash(directory: Path, config: dict[str, Any], digest: str) -> bool:
    """Write `digest` into a checkpoint's model.json (atomically); False when the directory is not writable."""
    path = Path(directory) / CONFIG
    tmp = path.with_name(f".{CONFIG}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({**config, "weights_sha256": digest}, indent=2, sort_keys=True, default=list))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    return True


def load_checkpoint(
    directory: Path,
    expect_key: str | None = None,
    record_missing_hash: bool = False,
    rebuild: Callable[[dict[str, Any]], nn.Module] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the architecture named in `model.json` and load its safetensors weights, verified.

    The untrained module is `build_model(arch, input_shape, num_classes, **args)` of the model registry, or
    `rebuild(config)` (config: the checkpoint's `model.json`) for modules the registry does not build (the text
    targets of modelinv.text, whose stored config also holds their tokeniser).

    The weights' SHA-256 must be the one `model.json` records (`weights_sha256`), else `CorruptCheckpoint`
    naming the file. A checkpoint written before checksums has none: it loads unverified with a one-line note,
    and with `record_missing_hash` (the cache) the hash is recorded then, so later loads are verified. The
    returned config's `weights_sha256` is the hash of the bytes loaded.
    """
    directory = Path(directory)
    config = read_config(directory)
    if expect_key is not None and config.get("request_key") != expect_key:
        raise CorruptCheckpoint(f"checkpoint {directory / CONFIG} was produced by a different request than its cache key")
    if rebuild is not None:
        model = rebuild(config)
    else:
        model = build_model(config["arch"], tuple(config["input_shape"]), config["num_classes"], **config.get("args", {}))
    path = directory / WEIGHTS
    if not path.is_file():
        raise CorruptCheckpoint(f"checkpoint not found: {path}")
    data = path.read_bytes()
    digest = sha256_hex(data)
    recorded = config.get("weights_sha256")
    if recorded is not None and digest != recorded.lower():
        raise CorruptCheckpoint(_mismatch(f"corrupted checkpoint file {path}", digest, recorded, f"its {CONFIG} records"))
    _load_state(path, data, model, config["arch"])
    if recorded is None:
        done = record_missing_hash and _record_hash(directory, config, digest)
        _say(
            f"note: {path} has no recorded SHA-256 (written before checksums); loaded unverified"
            + ("; its hash is recorded now and later loads are verified" if done else "")
        )
    model.eval()
    return model, {**config, "weights_sha256": digest}


INDEX = "artifact.json"


def _on_corrupt() -> str:
    mode = os.environ.get(ON_CORRUPT_ENV, "retrain").strip().lower() or "retrain"
    if mode not in ("retrain", "error"):
        raise ModelinvError(f"{ON_CORRUPT_ENV} must be 'retrain' or 'error', not {mode!r}")
    return mode


def _load_artifact(
    directory: Path, request: ModelRequest, rebuild: Callable[[dict[str, Any]], nn.Module] | None = None
) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """A cached artifact's modules, every weights file verified; CorruptCheckpoint (naming the file) otherwise."""
    index = directory / INDEX
    try:
        meta = json.loads(index.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptCheckpoint(f"corrupted checkpoint file {index}: not valid JSON ({err})") from None
    names = meta.get("modules") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n and "/" not in n and n not in (".", "..") for n in names):
        raise CorruptCheckpoint(f"corrupted checkpoint file {index}: no valid module list")
    modules, hashes = {}, {}
    for name in names:
        modules[name], config = load_checkpoint(directory / name, expect_key=request.key(), record_missing_hash=True, rebuild=rebuild)
        hashes[name] = config["weights_sha256"]
    return modules, {**meta, "weights_sha256": hashes}


def artifact_dir(request: ModelRequest, cache_dir: Path | None = None) -> Path:
    """Where the cache keeps what `request` describes."""
    return Path(cache_dir or default_cache_dir()) / "models" / f"{request.arch}-{request.key()}"


def is_cached(request: ModelRequest, cache_dir: Path | None = None) -> bool:
    """Whether the cache holds an artifact for `request` (not verified here: `cached` verifies it when loading)."""
    return (artifact_dir(request, cache_dir) / INDEX).exists()


def cached(
    request: ModelRequest,
    produce: Callable[[], tuple[dict[str, nn.Module], dict[str, Any]]],
    cache_dir: Path | None = None,
    rebuild: Callable[[dict[str, Any]], nn.Module] | None = None,
) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """The named modules `request` describes: loaded from the cache, or produced (built and trained) and stored.

    Each produced module carries a `spec` (arch, args, input_shape, num_classes, and anything else its
    rebuilding needs), written into its `model.json`; loading rebuilds it with the model registry, or with
    `rebuild(config)` when given (see `load_checkpoint`).

    An artifact is a directory named after the request's hash holding one checkpoint per module and an
    index; it is written to a temporary directory and renamed, so an interrupted run stores nothing.
    Every module's weights are verified against the SHA-256 its `model.json` records; a corrupt entry gets a
    one-line warning naming the file and is produced again, overwriting it (or, with
    `MODELINV_CACHE_ON_CORRUPT=error`, is a `CorruptCheckpoint`).
    `produce` builds its modules on the CPU and trains them on `request.device`; loaded modules are moved
    there, so the modules returned are on `request.device` either way.
    The metadata has `cached`, `path`, `request`, `metrics`, `seconds` and `weights_sha256` (module name -> the
    SHA-256 of its weights file).
    """
    directory = artifact_dir(request, cache_dir)
    index = directory / INDEX
    if index.exists():
        try:
            modules, meta = _load_artifact(directory, request, rebuild)
            return {name: m.to(request.device) for name, m in modules.items()}, {**meta, "cached": True, "path": str(directory)}
        except CorruptCheckpoint as err:
            if _on_corrupt() == "error":
                raise
            _say(f"warning: corrupt cache entry, retraining it: {err}")
    start = time.perf_counter()
    with seeded(request.seed):  # deterministic initialisation and training; the caller's random state is kept
        modules, metrics = produce()
    meta = {"request": asdict(request), "request_key": request.key(), "metrics": metrics, "seconds": time.perf_counter() - start}
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory.parent))
    hashes = {}
    for name, module in modules.items():
        save_checkpoint(tmp / name, module, meta)
        hashes[name] = read_config(tmp / name)["weights_sha256"]
    meta["weights_sha256"] = hashes
    (tmp / INDEX).write_text(json.dumps({**meta, "modules": sorted(modules)}, indent=2, default=list))
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    return {name: m.to(request.device) for name, m in modules.items()}, {**meta, "cached": False, "path": str(directory)}


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
    directory, `sha256` the SHA-256 of its weights file; `metrics` has val_acc (and test_acc when `test` is given) and the hooks' own (epsilon and
    delta for DP-SGD).
    """
    if data.digest() != request.data_digest:
        raise ValueError("request.data_digest does not match the training data")
    if request.defense and hooks is None:
        raise ValueError(f"request.defense names '{request.defense.get('name')}' but no training hooks were given")
    hooks = hooks if request.defense else None

    def produce():
        model = build_model(request.arch, request.input_shape, request.num_classes, **request.args).to(request.device)  # initialised on the CPU
        desc = f"training {request.role} {request.arch}"
        metrics = train_classifier(model, data, TrainConfig(**request.train), request.seed, desc=desc, hooks=hooks)
        if test is not None:
            metrics["test_acc"] = accuracy(hooks.deployed(model) if hooks else model, test)
        return {"model": model}, metrics

    modules, meta = cached(request, produce, cache_dir)
    return modules["model"], {**meta, "path": str(Path(meta["path"]) / "model"), "sha256": meta["weights_sha256"]["model"]}
