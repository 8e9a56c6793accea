"""Metrics of model-inversion success: one file per metric, each registered by name in METRICS.

`compute(["psnr", "knn_dist"], MetricInputs(...))` returns {"psnr": ..., "knn_dist": ...}; a metric
whose inputs are missing (e.g. psnr without the true inputs) raises a ModelinvError naming it.
"""

from __future__ import annotations

from typing import Any

from modelinv.metrics import attack_accuracy, attribute, dcor, fid_eval, knn_dist, knn_ratio, mse, psnr, ssim  # noqa: F401  (registration)
from modelinv.metrics.base import METRICS, Metric, MetricInputs, run_evaluator

__all__ = ["METRICS", "Metric", "MetricInputs", "compute", "describe_metrics", "run_evaluator"]


def compute(names: list[str], inputs: MetricInputs) -> dict[str, float]:
    """Each named metric on `inputs`; every name and need is checked before any metric runs."""
    metrics = [METRICS.get(name) for name in names]
    for metric in metrics:
        metric.check(inputs)
    return {metric.name: metric(inputs) for metric in metrics}


def describe_metrics() -> list[dict[str, Any]]:
    """Name, summary, needs and higher_is_better of every registered metric, sorted by name."""
    return [METRICS.info(name) for name in METRICS.names()]
