"""Checks of a grid before any work: everything about a run that can be known from its data and an untrained
copy of its target is checked before the first model is trained, so that a wrong cut layer, an access the
attack cannot use or more targets than the data holds fail in seconds, not after minutes of training.

The data are loaded and split exactly as the runner will (`runner.load_splits`, cheap next to training); the
target's layers come from an untrained copy of its architecture (or the user's given weights). Nothing is
written and the caller's random state is untouched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelinv.data.schema import sensitive_of
from modelinv.data.types import Splits
from modelinv.errors import ModelinvError
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.runner import build_threat, check_names, cut_layer, load_splits, make_defense
from modelinv.experiment.text import check_text_run, is_text
from modelinv.models import build_model
from modelinv.models.layered import LayeredNet
from modelinv.models.user import load_user_model
from modelinv.seeding import seeded


def data_key(cfg: ExperimentConfig) -> str:
    """What determines a run's data splits (its data config and seed): runs with the same key share their splits."""
    return _key(cfg, "data", "seed")


def _key(cfg: ExperimentConfig, *fields: str) -> str:
    return json.dumps(cfg.model_dump(mode="json", include=set(fields)), sort_keys=True)


def untrained_target(cfg: ExperimentConfig, splits: Splits) -> LayeredNet:
    """The target's architecture with fresh weights (or the user's given weights), for its layers; no training."""
    data = splits.private_train
    with seeded(None):  # building a module draws its initial weights from the global random state: leave it as it was
        if cfg.target.weights is not None:
            return load_user_model(Path(cfg.target.weights), cfg.target.arch, data.input_shape, data.num_classes, cfg.target.args, trust_code=cfg.target.trust_code, normalize=cfg.target.normalize)
        return build_model(cfg.target.arch, data.input_shape, data.num_classes, **cfg.target.args)


def check_layer(cfg: ExperimentConfig, splits: Splits, target: LayeredNet) -> None:
    """The cut layer of `cfg.access` (and of a defense that acts on one) exists in the target."""
    cut_layer(cfg, target)
    with seeded(None):
        make_defense(cfg, splits.private_train)


def check_run(cfg: ExperimentConfig, splits: Splits, target: LayeredNet) -> None:
    """Everything about one run that its data and untrained target tell: layer, access, sensitive column, number of targets."""
    attack, _ = check_names(cfg)
    check_layer(cfg, splits, target)
    if cfg.access.endpoint is None:  # a served target is reached (and checked) only when the run starts
        with seeded(None):
            threat, _ = build_threat(cfg, target, make_defense(cfg, splits.private_train))
        threat.require(cfg.attack.name, attack.observes, attack.white_box)
    if attack.goal == "attribute":
        sensitive_of(splits.private_train)
    if attack.goal != "class":
        pool, what = (splits.private_train, "private training records") if attack.goal == "attribute" else (splits.private_test, "private test inputs")
        if cfg.num_targets > len(pool):
            raise ModelinvError(
                f"num_targets {cfg.num_targets} is more than the {len(pool)} {what} of {cfg.data.source} ({cfg.data.split} split); set num_targets to at most {len(pool)}"
            )


def check_grid(configs: list[ExperimentConfig], describe=lambda cfg: "") -> dict[str, Splits]:
    """`check_run` for every config, loading each distinct data split and target once; an error names the run by
    `describe(cfg)`. Returns the splits loaded, by `data_key`."""
    splits: dict[str, Splits] = {}
    targets: dict[str, Any] = {}
    for cfg in configs:
        try:
            if is_text(cfg):  # text targets have their own data and model registry
                check_text_run(cfg)
                continue
            data = data_key(cfg)
            if data not in splits:
                splits[data] = load_splits(cfg.data, cfg.seed)
            target_key = data + _key(cfg, "target")
            if target_key not in targets:
                targets[target_key] = untrained_target(cfg, splits[data])
            check_run(cfg, splits[data], targets[target_key])
        except ModelinvError as err:
            name = describe(cfg)
            raise (ModelinvError(f"{name}: {err}") if name else err) from None
    return splits
