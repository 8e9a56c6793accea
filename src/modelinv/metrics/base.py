"""What a metric receives, the Metric base class, the metric registry, and the evaluator runner they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError
from modelinv.registry import Registry

EVAL_BATCH_SIZE = 256

NEEDS = {
    "truth": "the true private input behind each reconstruction",
    "evaluator": "an evaluation classifier",
    "private": "reference private samples",
    "holdout": "real held-out private samples (for ratios against real images)",
    "public": "the attacker's public records with their sensitive column",
}
"""What a metric may need beyond the reconstructions and their labels, in words for error messages."""


@dataclass
class MetricInputs:
    """An attack's output and the references a metric may compare it with."""

    reconstructions: torch.Tensor  # (N, C, H, W) in [0, 1], or completed records (N, D) for attribute inference
    labels: torch.Tensor  # (N,) int64: the class each reconstruction should show (true or targeted)
    truth: torch.Tensor | None = None  # (N, C, H, W) true private inputs, when specific inputs are reconstructed
    evaluator: nn.Module | None = None  # evaluator(x) -> logits (N, K); evaluator.embed(x) -> (N, D)
    private: Dataset | None = None  # reference private samples (x, y) for knn_dist / fid_eval
    holdout: Dataset | None = None  # real private samples not in `private`, the yardstick of knn_ratio
    public: Dataset | None = None  # the attacker's data, for attribute inference's baselines

    def __post_init__(self) -> None:
        n = self.reconstructions.shape[0]
        if n == 0:
            raise ModelinvError("metric inputs: there are no reconstructions")
        if self.labels.shape != (n,):
            raise ModelinvError(f"metric inputs: labels have shape {tuple(self.labels.shape)}, expected ({n},)")
        if self.truth is not None and self.truth.shape != self.reconstructions.shape:
            raise ModelinvError(
                f"metric inputs: truth has shape {tuple(self.truth.shape)}, "
                f"reconstructions {tuple(self.reconstructions.shape)}"
            )


class Metric:
    """A number summarising how much an attack recovered; subclasses implement `evaluate`."""

    name: str  # a class attribute, or set per instance by a parametrised metric
    needs: ClassVar[frozenset[str]] = frozenset()  # subset of NEEDS
    higher_is_better: ClassVar[bool]

    @property
    def summary(self) -> str:
        return (type(self).__doc__ or "").strip().splitlines()[0]

    def check(self, inputs: MetricInputs) -> None:
        """Raise a ModelinvError naming this metric and each input it needs that `inputs` lacks."""
        missing = [f"{need} ({NEEDS[need]})" for need in sorted(self.needs) if getattr(inputs, need) is None]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise ModelinvError(f"metric '{self.name}' needs {' and '.join(missing)}, which {verb} missing")

    def __call__(self, inputs: MetricInputs) -> float:
        self.check(inputs)
        with torch.no_grad():
            return float(self.evaluate(inputs))

    def evaluate(self, inputs: MetricInputs) -> float:
        raise NotImplementedError


METRICS: Registry[Metric] = Registry("metric")


def register(metric: Metric) -> Metric:
    """Add a metric instance to METRICS under its name, with what it needs and its direction."""
    info = {"summary": metric.summary, "needs": sorted(metric.needs), "higher_is_better": metric.higher_is_better}
    return METRICS.register(metric.name, **info)(metric)


def run_evaluator(evaluator: nn.Module, x: torch.Tensor, *, embed: bool = False) -> torch.Tensor:
    """evaluator(x) logits, or evaluator.embed(x) penultimate features, computed in eval mode without
    gradients in batches of EVAL_BATCH_SIZE on the evaluator's device; returned on the CPU."""
    fn = getattr(evaluator, "embed", None) if embed else evaluator
    if fn is None:
        raise ModelinvError(f"the evaluator ({type(evaluator).__name__}) has no embed(x) for penultimate features")
    device = next(evaluator.parameters(), x).device
    was_training = evaluator.training
    evaluator.eval()
    try:
        with torch.no_grad():
            return torch.cat([fn(batch.to(device)).cpu() for batch in x.split(EVAL_BATCH_SIZE)])
    finally:
        evaluator.train(was_training)
