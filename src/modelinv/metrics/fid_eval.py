"""Frechet distance in the evaluation classifier's feature space (not Inception FID, hence the name)."""

from __future__ import annotations

import torch

from modelinv.errors import ModelinvError
from modelinv.metrics.base import Metric, MetricInputs, register, run_evaluator
from modelinv.stats import frechet_distance


class FIDEval(Metric):
    """Frechet distance between Gaussian fits of evaluator features of reconstructions and private samples.

    FID (Heusel et al., NeurIPS 2017), ||mu_r - mu_p||^2 + Tr(S_r + S_p - 2 (S_r S_p)^(1/2)), computed on
    evaluator.embed features instead of Inception-v3 pool features, whose weights are not available
    offline; values are therefore not comparable with published FIDs. Means and unbiased covariances
    are fitted to all reconstructions and all given private samples (pass those of the attacked classes).
    """

    name = "fid_eval"
    needs = frozenset({"evaluator", "private"})
    higher_is_better = False

    def evaluate(self, inputs: MetricInputs) -> float:
        fits = []
        for what, x in (("reconstructions", inputs.reconstructions), ("private samples", inputs.private.x)):
            if len(x) < 2:
                raise ModelinvError(f"metric '{self.name}' needs at least 2 {what} to fit a covariance; got {len(x)}")
            features = run_evaluator(inputs.evaluator, x, embed=True).double()
            fits += [features.mean(dim=0), torch.atleast_2d(features.T.cov())]
        return frechet_distance(*fits)


register(FIDEval())
