"""Minibatch training: the one loop every trained network uses, and the training of classifiers on it.

`train_epochs` is the loop: each epoch draws its batches from a seeded `torch.Generator` (a shuffled
partition by default), takes one optimiser step per batch on a loss of the batch's indices, and yields the
epoch's mean loss; the caller reads it, validates, or breaks out to stop early. Target and evaluator
classifiers (`train_classifier`), the inverse network and the shadow client of the split-inference attacks,
and LOMMA's distilled surrogates are trained with it; GANs alternate two networks' updates and share
`modelinv.gans.train_gan` instead.

`train_classifier`: Adam with a cosine schedule, random-shift augmentation for images, a validation split,
and early stopping on validation accuracy (the best epoch's weights are kept). `TrainingHooks` is how a
defense changes the training (its loss, batches, optimiser, deployed model).

Nothing here seeds the global random state: module initialisation, dropout and a defense's noise draw from
it, and the caller seeds it (`modelinv.seeding.seeded`, as the model cache does before training).

Devices: training runs on the model's device. The data may stay on the CPU: it is moved there once, and
every random draw (batch order, validation split, augmentation shifts) comes from a CPU `torch.Generator`,
so the same seed draws the same batches on every device.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from modelinv.data.transforms import random_shift
from modelinv.data.types import Dataset
from modelinv.devices import device_of
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


BatchSampler = Callable[[int, int, torch.Generator], Iterable[torch.Tensor]]
"""(n, batch_size, gen) -> the index tensors of one epoch's batches."""


def shuffled_batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """One epoch's batches: a random permutation of range(n) drawn from `gen`, cut into runs of `batch_size` (the last may be shorter)."""
    return iter(torch.randperm(n, generator=gen).split(batch_size))  # cpu: indices from the CPU generator (they index any device)


def train_epochs(
    loss: Callable[[torch.Tensor], torch.Tensor],
    optimiser: torch.optim.Optimizer,
    n: int,
    epochs: int,
    batch_size: int,
    gen: torch.Generator,
    *,
    batches: BatchSampler = shuffled_batches,
    after_step: Callable[[], Any] | None = None,
    desc: str | None = None,
) -> Iterator[float]:
    """The minibatch loop: for each of `epochs` epochs, draw the batches of the n examples with `batches(n,
    batch_size, gen)`; for each batch of indices, one step of `optimiser` on the scalar `loss(indices)`, then
    `after_step()` (a per-step schedule); yield the epoch's mean loss (per example, weighted by batch size).

    Break out of the loop to stop early. With `desc`, a progress bar (`modelinv.progress`) counts the epochs
    and shows their loss; a caller that shows other numbers (validation accuracy) runs its own bar instead.
    """
    with progress_bar(desc, epochs) if desc else nullcontext(lambda **_: None) as advance:
        for _ in range(epochs):
            total, seen = 0.0, 0
            for idx in batches(n, batch_size, gen):
                value = loss(idx)
                optimiser.zero_grad()
                value.backward()
                optimiser.step()
                if after_step is not None:
                    after_step()
                if len(idx):
                    total += value.item() * len(idx)
                    seen += len(idx)
            mean = total / seen if seen else float("nan")
            advance(loss=mean)
            yield mean


class TrainingHooks:
    """The ways a training-time defense may change `train_classifier`; this base changes nothing."""

    def setup(self, model: torch.nn.Module, optimiser: torch.optim.Optimizer, train_size: int, config: TrainConfig) -> torch.optim.Optimizer:
        """The optimiser to train with (DP-SGD wraps it); called once before the first step."""
        return optimiser

    def batches(self, n: int, batch_size: int, gen: torch.Generator) -> Iterable[torch.Tensor]:
        """Indices of each step's batch in one epoch: a shuffled partition of the n training examples."""
        return shuffled_batches(n, batch_size, gen)

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
    """Logits of `model` on `x`, in eval mode and in batches, on the model's device (where `x` is moved)."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    out = torch.cat([model(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def accuracy(model: torch.nn.Module, data: Dataset) -> float:
    """Top-1 accuracy of `model` on `data` (compared on the model's device)."""
    logits = predict_logits(model, data.x)
    return float((logits.argmax(1) == data.y.to(logits.device)).float().mean())


def train_classifier(
    model: torch.nn.Module, data: Dataset, config: TrainConfig, seed: int, desc: str = "train", hooks: TrainingHooks | None = None
) -> dict:
    """Train `model` on `data` (cross-entropy, or the loss of a defense's `hooks`); keep the weights of the
    best validation epoch, validated on the deployed model. Runs on the model's device (module docstring).

    Returns val_acc, epochs run, wall time and the hooks' metrics.
    """
    hooks = hooks or TrainingHooks()
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=gen)  # cpu: the validation split's indices
    n_val = max(1, int(round(config.val_fraction * len(data))))
    val, train = data.subset(order[:n_val]), data.subset(order[n_val:])
    device = device_of(model)
    train_x, train_y = train.x.to(device), train.y.to(device)
    if hasattr(model, "fit_inputs"):  # tabular models standardise their columns with the training rows' statistics
        model.fit_inputs(train_x)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.epochs)
    optimiser = hooks.setup(model, optimiser, len(train), config)
    shift = min(config.augment_shift, data.x.shape[-2] // 8) if data.x.dim() == 4 else 0

    def loss(idx: torch.Tensor) -> torch.Tensor:
        return hooks.loss(model, random_shift(train_x[idx], shift, gen), train_y[idx])

    best_acc, best_state, stale, epochs_run = -1.0, None, 0, 0
    start = time.perf_counter()
    model.train()
    with progress_bar(desc, config.epochs) as advance:
        for epoch, _ in enumerate(train_epochs(loss, optimiser, len(train), config.epochs, config.batch_size, gen, batches=hooks.batches)):
            schedule.step()
            epochs_run = epoch + 1
            val_acc = accuracy(hooks.deployed(model), val)
            model.train()
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
