"""Supervised training of classifiers: Adam, a validation split, early stopping on validation accuracy."""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from modelinv.data.types import Dataset
from modelinv.progress import progress_bar


class TrainConfig(BaseModel):
    """How a classifier is trained; part of its cache key."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(40, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    patience: int = Field(8, ge=1)


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


def train_classifier(model: torch.nn.Module, data: Dataset, config: TrainConfig, seed: int, desc: str = "train") -> dict:
    """Train `model` on `data` with cross-entropy; keep the weights of the best validation epoch.

    Returns val_acc, epochs run and wall time.
    """
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=gen)
    n_val = max(1, int(round(config.val_fraction * len(data))))
    val, train = data.subset(order[:n_val]), data.subset(order[n_val:])
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best_acc, best_state, stale, epochs_run = -1.0, None, 0, 0
    start = time.perf_counter()
    with progress_bar(desc, config.epochs) as advance:
        for epoch in range(config.epochs):
            model.train()
            perm = torch.randperm(len(train), generator=gen)
            for i in range(0, len(train), config.batch_size):
                idx = perm[i : i + config.batch_size]
                loss = F.cross_entropy(model(train.x[idx]), train.y[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            epochs_run = epoch + 1
            val_acc = accuracy(model, val)
            advance(val_acc=val_acc)
            if val_acc > best_acc:
                best_acc, best_state, stale = val_acc, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
                if stale >= config.patience:
                    break
    model.load_state_dict(best_state)
    model.eval()
    return {"val_acc": best_acc, "epochs": epochs_run, "train_seconds": time.perf_counter() - start}
