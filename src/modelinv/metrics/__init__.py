"""Metrics of model-inversion success: one file per metric, each registered by name in METRICS.

`compute(["psnr", "knn_dist"], MetricInputs(...))` returns {"psnr": ..., "knn_dist": ...}; a metric
whose inputs are missing (e.g. psnr without the true inputs) raises a ModelinvError naming it, and a
metric undefined for the inputs given (e.g. top-5 accuracy with 5 classes or fewer, dcor of fewer than
4 pairs, fid_eval with a class of 1 reconstruction) gives None, shown "n/a".
"""

from __future__ import annotations

from typing import Any

from modelinv.metrics import (  # noqa: F401  (registration)
    attack_accuracy,
    attribute,
    bow,
    candidates,
    dcor,
    dcor_observation,
    diversity_ratio,
    exposure,
    extraction,
    fid_eval,
    knn_dist,
    knn_ratio,
    mse,
    psnr,
    ssim,
)
from modelinv.metrics.base import METRICS, Metric, MetricInputs, run_evaluator

__all__ = ["METRICS", "Metric", "MetricInputs", "compute", "describe_metrics", "run_evaluator"]


def compute(names: list[str], inputs: MetricInputs) -> dict[str, float | None]:
    """Each named metric on `inputs` by name: a float, or None where the metric is undefined for these inputs
    (e.g. attack_acc_top5 with k >= the number of classes, dcor of fewer than 4 pairs). Every name and
    need is checked before any metric runs."""
    metrics = [METRICS.get(name) for name in names]
    for metric in metrics:
        metric.check(inputs)
    return {metric.name: metric(inputs) for metric in metrics}


def describe_metrics() -> list[dict[str, Any]]:
    """Name, summary, needs and higher_is_better of every registered metric, sorted by name."""
    return [METRICS.info(name) for name in METRICS.names()]
