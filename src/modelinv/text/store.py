"""The cache of text targets trained here: safetensors weights and a JSON config (architecture arguments,
tokeniser, training request, metrics), keyed by the hash of what produced them. Loading never unpickles."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from modelinv.errors import ModelinvError
from modelinv.models.store import default_cache_dir
from modelinv.seeding import seeded
from modelinv.versions import versions

FORMAT = "modelinv-text-model/1"
WEIGHTS, CONFIG = "weights.safetensors", "model.json"


def request_key(request: dict[str, Any]) -> str:
    """The first 20 hex digits of the SHA-256 of `request` (sorted JSON) and torch's thread count (the same seed
    trains different bits at different counts)."""
    blob = json.dumps({**request, "threads": torch.get_num_threads()}, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cached_text_model(
    name: str,
    request: dict[str, Any],
    produce: Callable[[], tuple[nn.Module, dict[str, Any], dict[str, Any]]],
    rebuild: Callable[[dict[str, Any]], nn.Module],
    seed: int,
    cache_dir: Path | None = None,
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """(module, config, meta) for `request`: loaded from the cache, or produced inside `seeded(seed)` and stored.

    `produce()` returns the trained module, its config (JSON: what `rebuild(config)` needs to build an untrained
    copy, e.g. architecture arguments and tokeniser) and its metrics. The metadata has `cached`, `path`, `metrics`,
    `seconds` and `request_key`."""
    key = request_key(request)
    directory = Path(cache_dir or default_cache_dir()) / "text-models" / f"{name}-{key}"
    if (directory / CONFIG).is_file():
        try:
            stored = json.loads((directory / CONFIG).read_text())
            state = load_file(str(directory / WEIGHTS))
        except Exception as err:  # JSON and safetensors report corruption with several exception types
            raise ModelinvError(f"corrupted text model in {directory}: {str(err).splitlines()[0]} (delete it to retrain)") from None
        if stored.get("format") != FORMAT or stored.get("request_key") != key:
            raise ModelinvError(f"text model in {directory} was produced by a different request; delete it to retrain")
        module = rebuild(stored["config"])
        module.load_state_dict(state, strict=True)
        module.eval()
        meta = {k: stored[k] for k in ("metrics", "seconds", "request_key")}
        return module, stored["config"], {**meta, "cached": True, "path": str(directory)}
    start = time.perf_counter()
    with seeded(seed):
        module, config, metrics = produce()
    module.eval()
    meta = {"metrics": metrics, "seconds": time.perf_counter() - start, "request_key": key}
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory.parent))
    save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(tmp / WEIGHTS), metadata={"format": FORMAT})
    stored = {"format": FORMAT, "name": name, "request": request, "config": config, **meta, "versions": versions()}
    (tmp / CONFIG).write_text(json.dumps(stored, indent=2, sort_keys=True, default=list))
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    return module, config, {**meta, "cached": False, "path": str(directory)}
