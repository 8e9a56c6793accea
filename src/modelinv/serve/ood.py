"""Out-of-distribution score of a query against reference (training) data, from two classic statistics:

- the Mahalanobis distance of its penultimate features to the closest class mean under a shared
  covariance (Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution Samples and
  Adversarial Attacks", NeurIPS 2018, eq. 2), the covariance of the class-centred features estimated
  with Ledoit-Wolf shrinkage (scikit-learn's `LedoitWolf`: well conditioned when features outnumber
  or nearly outnumber the samples, with no ridge to tune);
- the residual of its input after projection on the top principal components of the reference inputs
  (PCA reconstruction error, the linear case of Hoffmann, "Kernel PCA for novelty detection", Pattern
  Recognition 2007; scikit-learn's `PCA`). Features alone can miss noise: a small classifier maps
  uniform noise close to its class means, yet noise lies far off the subspace of real images.

Each is divided by its `quantile` on the reference data; the score is the larger, so a query scoring
above 1 is out of distribution. Noise queries that train inverse networks (He et al. 2019, Table 4)
score far above 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA

from modelinv.data.types import Dataset
from modelinv.models.layered import LayeredNet


@dataclass(frozen=True)
class FeatureStats:
    """Class means of penultimate features whitened by the shared (shrunk) covariance, the principal
    subspace of the reference inputs, and the two scales (reference quantiles) the raw distances are
    divided by.

    scikit-learn estimates the covariance and the subspace; the distances are computed here from its
    estimates (`precision_`, `mean_`, `components_`) in one vectorised pass, because `LedoitWolf.mahalanobis`
    measures to one location per call through `pairwise_distances` (about 0.6 ms per class per request,
    6 ms of a 10-class model's answer), and `PCA.transform` validates its input on every call."""

    means: np.ndarray
    """Class means, whitened: rows of `mean @ whiten`."""
    whiten: np.ndarray
    """W with W W^T = the Ledoit-Wolf precision, so ||(e - mean) W|| is the Mahalanobis distance."""
    pca: PCA
    scales: tuple[float, float]
    digest: str

    @classmethod
    @torch.no_grad()
    def fit(cls, model: LayeredNet, data: Dataset, quantile: float = 0.99, components: int = 32) -> "FeatureStats":
        """Statistics of `data` (the reference) under `model`; the scales are the `quantile` of each distance on it."""
        model.eval()
        emb = torch.cat([model.embed(x) for x in data.x.split(512)]).double().numpy()
        y = data.y.numpy()
        classes = np.unique(y)
        means = np.stack([emb[y == c].mean(0) for c in classes])
        covariance = LedoitWolf(assume_centered=True).fit(emb - means[np.searchsorted(classes, y)])
        whiten = np.linalg.cholesky(covariance.precision_)
        flat = data.x.flatten(1).double().numpy()
        pca = PCA(n_components=min(components, *flat.shape), svd_solver="full").fit(flat)  # full SVD: deterministic
        feature, residual = cls(means @ whiten, whiten, pca, (1.0, 1.0), data.digest()).distances(flat, emb)
        scales = (float(np.quantile(feature, quantile)), float(np.quantile(residual, quantile)))
        return cls(means @ whiten, whiten, pca, scales, data.digest())

    def distances(self, x: np.ndarray, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per input (flattened rows of `x` and `emb`): Mahalanobis distance of `emb` to the closest class
        mean, and the PCA residual norm of `x`."""
        z = emb.astype(np.float64) @ self.whiten
        feature = np.sqrt(((z[:, None, :] - self.means[None]) ** 2).sum(-1).min(1))
        centred = x.astype(np.float64) - self.pca.mean_
        basis = self.pca.components_
        residual = np.linalg.norm(centred - (centred @ basis.T) @ basis, axis=1)
        return feature, residual

    def score(self, x: np.ndarray, emb: np.ndarray) -> np.ndarray:
        """max(feature distance / its scale, residual / its scale): above 1 is out of distribution."""
        feature, residual = self.distances(x, emb)
        return np.maximum(feature / self.scales[0], residual / self.scales[1])
