"""Supervised training of classifiers: Adam with a cosine schedule, random-shift augmentation for images,
a validation split, and early stopping on validation accuracy (the best epoch's weights are kept).

`TrainingHooks` is how a defense changes the training (its loss, batches, optimiser, deployed model)."""

from __future__ import annotations

import copy
import time
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from modelinv.data.transforms import random_shift
from modelinv.data.types import Dataset
from modelinv.progress import progress_bar


class TrainConfig(BaseModel):
    """How a classifier is trained; part of its cache key."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(40, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0, description="initial Adam step size, annealed to 0 by a cosine schedule")
    weight_decay: float = Field(0.0, ge=0)
    augment_shift: int = Field(2, ge=0, description="random translation of images, pixels (at most H/8)")
    val_fraction: float = Field(0.1, gt=0, lt=1)
    patience: int | None = Field(
        None, ge=1, description="stop after this many epochs without a better validation accuracy; None: run all epochs"
    )


class TrainingHooks:
    """The ways a training-time defense may change `train_classifier`; this base changes nothing."""

    def setup(self, model: torch.nn.Module, optimiser: torch.optim.Optimizer, train_size: int, config: TrainConfig) -> torch.optim.Optimizer:
        """The optimiser to train with (DP-SGD wraps it); called once before the first step."""
        return optimiser

    def batches(self, n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
        """Indices of each step's batch in one epoch: a shuffled partition of the n training examples."""
        return iter(torch.randperm(n, generator=gen).split(batch_size))

    def loss(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training objective on one batch: cross-entropy."""
        return F.cross_entropy(model(x), y)

    def deployed(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model as the victim runs it (with the defense's perturbations): what accuracy is measured on."""
        return model

    def finish(self, model: torch.nn.Module) -> dict[str, Any]:
        """Undo `setup`'s changes to the model; return metrics to store with it (e.g. epsilon)."""
        return {}


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits of `model` on `x`, in eval mode and in batches."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def accuracy(model: torch.nn.Module, data: Dataset) -> float:
    """Top-1 accuracy of `model` on `data`."""
    return float((predict_logits(model, data.x).argmax(1) == data.y).float().mean())


def train_classifier(
    model: torch.nn.Module, data: Dataset, config: TrainConfig, seed: int, desc: str = "train", hooks: TrainingHooks | None = None
) -> dict:
    """Train `model` on `data` (cross-entropy, or the loss of a defense's `hooks`); keep the weights of the
    best validation epoch, validated on the deployed model.

    Returns val_acc, epochs run, wall time and the hooks' metrics.
    """
    hooks = hooks or TrainingHooks()
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=gen)
    n_val = max(1, int(round(config.val_fraction * len(data))))
    val, train = data.subset(order[:n_val]), data.subset(order[n_val:])
    if hasattr(model, "fit_inputs"):  # tabular models standardise their columns with the training rows' statistics
        model.fit_inputs(train.x)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.epochs)
    optimiser = hooks.setup(model, optimiser, len(train), config)
    shift = min(config.augment_shift, data.x.shape[-2] // 8) if data.x.dim() == 4 else 0
    best_acc, best_state, stale, epochs_run = -1.0, None, 0, 0
    start = time.perf_counter()
    with progress_bar(desc, config.epochs) as advance:
        for epoch in range(config.epochs):
            model.train()
            for idx in hooks.batches(len(train), config.batch_size, gen):
                x = random_shift(train.x[idx], shift, gen)
                loss = hooks.loss(model, x, train.y[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            schedule.step()
            epochs_run = epoch + 1
            val_acc = accuracy(hooks.deployed(model), val)
            advance(val_acc=val_acc)
            if val_acc > best_acc:
                best_acc, best_state, stale = val_acc, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
                if config.patience is not None and stale >= config.patience:
                    break
    extra = hooks.finish(model)
    model.load_state_dict(best_state)
    model.eval()
    return {"val_acc": best_acc, "epochs": epochs_run, "train_seconds": time.perf_counter() - start, **extra}
