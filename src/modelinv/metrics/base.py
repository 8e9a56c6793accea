"""What a metric receives, the Metric base class, the metric registry, and the evaluator runner they share."""

from __future__ import annotations

import math
import weakref
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
    "observations": "what the attacker observed of each true input (defended features or scores)",
}
"""What a metric may need beyond the reconstructions and their labels, in words for error messages."""


@dataclass
class MetricInputs:
    """An attack's output and the references a metric may compare it with.

    Metrics compare on the CPU: the reconstructions, labels, true inputs and observations are moved there
    (a no-op for CPU tensors), and the evaluator runs on its own device and returns its outputs on the CPU
    (`run_evaluator`), so what a metric compares is on one device and its value does not depend on the
    device the attack ran on."""

    reconstructions: torch.Tensor  # (N, C, H, W) in [0, 1], or completed records (N, D) for attribute inference
    labels: torch.Tensor  # (N,) int64: the class each reconstruction should show (true or targeted)
    truth: torch.Tensor | None = None  # (N, C, H, W) true private inputs, when specific inputs are reconstructed
    evaluator: nn.Module | None = None  # evaluator(x) -> logits (N, K); evaluator.embed(x) -> (N, D)
    private: Dataset | None = None  # reference private samples (x, y) for knn_dist / fid_eval
    holdout: Dataset | None = None  # real private samples not in `private`, the yardstick of knn_ratio
    public: Dataset | None = None  # the attacker's data, for attribute inference's baselines
    observations: torch.Tensor | None = None  # (N, ...) what the attacker observed of each true input, after any defense

    def __post_init__(self) -> None:
        self.reconstructions, self.labels = self.reconstructions.cpu(), self.labels.cpu()
        self.truth = self.truth.cpu() if self.truth is not None else None
        self.observations = self.observations.cpu() if self.observations is not None else None
        n = self.reconstructions.shape[0]
        if n == 0:
            raise ModelinvError("metric inputs: there are no reconstructions")
        if self.labels.shape != (n,):
            raise ModelinvError(f"metric inputs: labels have shape {tuple(self.labels.shape)}, expected ({n},)")
        if self.truth is not None and self.truth.shape != self.reconstructions.shape:
            raise ModelinvError(f"metric inputs: truth has shape {tuple(self.truth.shape)}, reconstructions {tuple(self.reconstructions.shape)}")
        if self.observations is not None and (self.observations.dim() == 0 or self.observations.shape[0] != n):
            raise ModelinvError(f"metric inputs: observations have shape {tuple(self.observations.shape)}, expected ({n}, ...): one per reconstruction")


class Metric:
    """A number summarising how much an attack recovered; subclasses implement `evaluate`."""

    name: str  # a class attribute, or set per instance by a parametrised metric
    needs: ClassVar[frozenset[str]] = frozenset()  # subset of NEEDS
    higher_is_better: ClassVar[bool]
    # The range every value lies in (an accuracy in [0, 1], a distance >= 0); a t interval over seeds is clipped to
    # it in report.aggregate, since a mean of values in a range lies in that range. Unbounded where not set.
    bounds: ClassVar[tuple[float, float]] = (-math.inf, math.inf)

    @property
    def summary(self) -> str:
        return (type(self).__doc__ or "").strip().splitlines()[0]

    def check(self, inputs: MetricInputs) -> None:
        """Raise a ModelinvError naming this metric and each input it needs that `inputs` lacks."""
        missing = [f"{need} ({NEEDS[need]})" for need in sorted(self.needs) if getattr(inputs, need) is None]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise ModelinvError(f"metric '{self.name}' needs {' and '.join(missing)}, which {verb} missing")

    def __call__(self, inputs: MetricInputs) -> float | None:
        """The metric as a float, or None ("n/a") where it is undefined for these inputs (e.g. top-5 of 5 classes)."""
        self.check(inputs)
        with torch.no_grad():
            value = self.evaluate(inputs)
        return None if value is None else float(value)

    def evaluate(self, inputs: MetricInputs) -> float | None:
        raise NotImplementedError


METRICS: Registry[Metric] = Registry("metric")


def register(metric: Metric) -> Metric:
    """Add a metric instance to METRICS under its name, with what it needs, its direction and its range."""
    info = {"summary": metric.summary, "needs": sorted(metric.needs), "higher_is_better": metric.higher_is_better, "bounds": metric.bounds}
    return METRICS.register(metric.name, **info)(metric)


def run_evaluator(evaluator: nn.Module, x: torch.Tensor, *, embed: bool = False) -> torch.Tensor:
    """evaluator(x) logits, or evaluator.embed(x) penultimate features, computed in eval mode without
    gradients in batches of EVAL_BATCH_SIZE on the evaluator's device; returned on the CPU.

    Results are memoised per input tensor (held weakly) for the same evaluator, unchanged weights and an
    unchanged tensor (torch's version counters), so the private reference set is embedded once per run
    however many metrics and trivial answers use it.

    Shape: x (N, C, H, W) -> logits (N, K) or features (N, D).
    """
    fn = getattr(evaluator, "embed", None) if embed else evaluator
    if fn is None:
        raise ModelinvError(f"the evaluator ({type(evaluator).__name__}) has no embed(x) for penultimate features")
    key = (id(evaluator), embed, x._version, tuple(p._version for p in evaluator.parameters()), evaluator.training)
    memo = _memo_of(x)
    if key in memo:
        return memo[key]
    device = next(evaluator.parameters(), x).device
    was_training = evaluator.training
    evaluator.eval()
    try:
        with torch.no_grad():
            out = torch.cat([fn(_layout(batch.to(device))).cpu() for batch in x.split(EVAL_BATCH_SIZE)])
    finally:
        evaluator.train(was_training)
    memo.clear()  # one entry per tensor: a stale evaluator's output is never kept
    memo[key] = out
    return out


def _layout(batch: torch.Tensor) -> torch.Tensor:
    """Images as channels-last: CPU convolutions, pooling and batch norm then run 2-3x faster in inference (the
    output equals the contiguous one up to float rounding, about 1e-7 relative)."""
    return batch.to(memory_format=torch.channels_last) if batch.dim() == 4 else batch  # .contiguous() keeps a 1-channel NCHW as it is


_MEMO: dict[int, tuple[weakref.ref, dict]] = {}


def _memo_of(x: torch.Tensor) -> dict:
    """The memo of tensor `x` (by identity: tensors compare elementwise), dropped when `x` is freed."""
    entry = _MEMO.get(id(x))
    if entry is None or entry[0]() is not x:
        entry = (weakref.ref(x, lambda _, i=id(x): _MEMO.pop(i, None)), {})
        _MEMO[id(x)] = entry
    return entry[1]
