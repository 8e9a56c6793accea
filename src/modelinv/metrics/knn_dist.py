"""KNN distance: how close each reconstruction comes, in the evaluator's features, to a private sample of its class."""

from __future__ import annotations

import math

import torch

from modelinv.errors import ModelinvError
from modelinv.metrics.base import Metric, MetricInputs, register, run_evaluator


class KNNDist(Metric):
    """Squared L2 distance in evaluator features to the nearest private sample of the same class, averaged.

    mean_i min_{j : y_j = label_i} ||e(x_hat_i) - e(x_j)||^2, with e = evaluator.embed (penultimate
    features) and (x_j, y_j) the private samples, as in GMI (Zhang et al., CVPR 2020) and KEDMI
    (Chen et al., CVPR 2021).
    """

    name = "knn_dist"
    needs = frozenset({"evaluator", "private"})
    higher_is_better = False
    bounds = (0.0, math.inf)

    def evaluate(self, inputs: MetricInputs) -> float:
        return nearest_same_class(inputs.evaluator, inputs.reconstructions, inputs.labels, inputs.private, self.name).mean().item()


def nearest_same_class(evaluator, x: torch.Tensor, labels: torch.Tensor, private, metric: str, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Per image, the squared evaluator-feature distance to the nearest private sample of its label; with
    `rows` (a boolean mask over x), for those images only, `labels` being theirs (x is embedded whole, so
    that the embedding is memoised across metrics and trivial answers)."""
    labels, private_y = labels.cpu(), private.y.cpu()
    absent = sorted(set(labels.tolist()) - set(private_y.tolist()))
    if absent:
        raise ModelinvError(f"metric '{metric}': the private samples have no sample of class {absent[0]}")
    rec = run_evaluator(evaluator, x, embed=True).double()
    if rows is not None:
        rec = rec[rows.cpu()]
    ref = run_evaluator(evaluator, private.x, embed=True).double()
    nearest = torch.empty(len(labels), dtype=torch.float64, device=rec.device)
    for c in labels.unique():
        mine = labels == c
        dist = torch.cdist(rec[mine], ref[private_y == c], compute_mode="donot_use_mm_for_euclid_dist")
        nearest[mine] = dist.min(dim=1).values.pow(2)
    return nearest


register(KNNDist())
