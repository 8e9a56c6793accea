"""Build what `modelinv serve` serves from a checkpoint directory of the store, its options and a database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelinv.data.types import Dataset
from modelinv.experiment.config import DataConfig
from modelinv.experiment.runner import load_splits
from modelinv.models.layered import LayeredNet
from modelinv.models.store import load_checkpoint, module_digest
from modelinv.serve.app import Served
from modelinv.serve.decode import Limits
from modelinv.serve.exposure import build_observer
from modelinv.serve.keys import KeyStore
from modelinv.serve.ood import FeatureStats
from modelinv.serve.querylog import QueryLog


def reference_data(source: str, config: dict[str, Any]) -> tuple[Dataset, bool]:
    """The private training split of `source` under the checkpoint's seed, and whether it is exactly the
    data the checkpoint was trained on (its digest equals the checkpoint's `data_digest`)."""
    request = config.get("request", {})
    data = load_splits(DataConfig(source=source), int(request.get("seed", 0))).private_train
    return data, data.digest() == request.get("data_digest")


def served_identity(model: LayeredNet, arch: str) -> dict[str, Any]:
    """What `GET /v1/info` says the served model is: architecture, input shape, classes, and the digest of its
    weights (`module_digest`: of the tensors, so the same weights give the same digest whatever file they came from).

    Example: served_identity(lenet, "lenet") -> {"arch": "lenet", "input_shape": [1, 28, 28], "num_classes": 10, "weights_digest": "3f2a..."}
    """
    return {"arch": arch, "input_shape": list(model.spec["input_shape"]), "num_classes": int(model.spec["num_classes"]), "weights_digest": module_digest(model)}


def load_served(
    model_dir: Path,
    expose: str,
    db: Path,
    defense: str | None = None,
    params: dict[str, Any] | None = None,
    reference: str | None = None,
    max_batch: int = 512,
    max_body_bytes: int = 8 * 2**20,
    hide_identity: bool = False,
) -> tuple[Served, dict[str, Any]]:
    """The served checkpoint and a summary of it (architecture, exposure, reference data) for the console;
    `hide_identity` keeps the model's identity out of `GET /v1/info`."""
    model, config = load_checkpoint(Path(model_dir))
    observer = build_observer(model, expose, defense, params)
    summary: dict[str, Any] = {"arch": config["arch"], "input_shape": tuple(config["input_shape"]), "reference": None}
    stats = None
    if reference is not None:
        data, is_training = reference_data(reference, config)
        stats = FeatureStats.fit(model, data)
        summary["reference"] = {"source": reference, "digest": data.digest(), "is_training_data": is_training}
    limits = Limits(tuple(config["input_shape"]), max_batch=max_batch, max_body_bytes=max_body_bytes)
    identity = None if hide_identity else served_identity(model, config["arch"])
    return Served(observer, limits, KeyStore(db), QueryLog(db, stats), identity=identity), summary
