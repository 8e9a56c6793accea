"""Class-conditional Frechet distance in the evaluation classifier's feature space (not Inception FID, hence the name)."""

from __future__ import annotations

import math

import numpy as np

from modelinv.errors import ModelinvError
from modelinv.metrics.base import Metric, MetricInputs, register, run_evaluator
from modelinv.stats import frechet_distance


class FIDEval(Metric):
    """Per-class Frechet distance between evaluator features of reconstructions and private samples, averaged over classes.

    FID (Heusel et al., NeurIPS 2017), ||mu_r - mu_p||^2 + Tr(S_r + S_p - 2 (S_r S_p)^(1/2)), computed for
    each inverted class c (each distinct label) between Gaussian fits (mean, unbiased covariance) of
    evaluator.embed features of the reconstructions labelled c and of the private samples of class c, then
    averaged over the inverted classes with equal weight. Conditioning on the class is what makes it a
    measure of inversion: a class-blind fit scores real digits of the wrong classes as well as right ones.
    Evaluator features replace Inception-v3 pool features, whose weights are not available offline, so
    values are not comparable with published FIDs. FID is biased upwards at small n (Chong & Forsyth, CVPR
    2020): compare with real held-out private images of the same classes at the same number per class,
    the runner's 'held-out-private' trivial answer, scored with this metric in every class-inversion run.

    None (shown "n/a") when an inverted class has fewer than 2 reconstructions (no covariance to fit);
    a ModelinvError when the private samples have fewer than 2 of an inverted class.
    Shape: reconstructions (N, C, H, W), labels (N,) -> a float, or None.
    Example: compute(["fid_eval"], MetricInputs(x_hat, labels, evaluator=judge, private=train)) -> {"fid_eval": 12.3}.
    """

    name = "fid_eval"
    needs = frozenset({"evaluator", "private"})
    higher_is_better = False
    bounds = (0.0, math.inf)

    def evaluate(self, inputs: MetricInputs) -> float | None:
        labels, private_y = inputs.labels.cpu(), inputs.private.y.cpu()
        classes = labels.unique()
        for c in classes.tolist():
            have = int((private_y == c).sum())
            if have < 2:
                raise ModelinvError(f"metric '{self.name}' needs at least 2 private samples of class {c} to fit a covariance; got {have}")
        if any(int((labels == c).sum()) < 2 for c in classes.tolist()):
            return None
        keep = (private_y.unsqueeze(1) == classes.unsqueeze(0)).any(1)
        # Split and fit in NumPy float64, like frechet_distance: torch's intra-op threads make these many
        # small reductions and masks up to 100x slower on oversubscribed CPUs.
        rec = run_evaluator(inputs.evaluator, inputs.reconstructions, embed=True).double().numpy()
        # the whole private set is embedded (memoised: once per run for every metric and trivial answer), then selected
        ref = run_evaluator(inputs.evaluator, inputs.private.x, embed=True).double().numpy()[keep.numpy()]
        rec_y, ref_y = labels.numpy(), private_y[keep].numpy()
        distances = [frechet_distance(*gaussian_fit(rec[rec_y == c]), *gaussian_fit(ref[ref_y == c])) for c in classes.tolist()]
        return sum(distances) / len(distances)


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of n >= 2 feature vectors (n, D)."""
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


register(FIDEval())
