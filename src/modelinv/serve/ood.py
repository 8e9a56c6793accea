"""Out-of-distribution score of a query against reference (training) data, from two classic statistics:

- the Mahalanobis distance of its penultimate features to the closest class mean under a shared
  covariance (Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution Samples and
  Adversarial Attacks", NeurIPS 2018, eq. 2);
- the residual of its input after projection on the top principal components of the reference inputs
  (PCA reconstruction error, the linear case of Hoffmann, "Kernel PCA for novelty detection", Pattern
  Recognition 2007). Features alone can miss noise: a small classifier maps uniform noise close to
  its class means, yet noise lies far off the subspace of real images.

Each is divided by its `quantile` on the reference data; the score is the larger, so a query scoring
above 1 is out of distribution. Noise queries that train inverse networks (He et al. 2019, Table 4)
score far above 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from modelinv.data.types import Dataset
from modelinv.models.layered import LayeredNet


@dataclass(frozen=True)
class FeatureStats:
    """Whitened class means of penultimate features, the reference inputs' mean and principal
    components, and the two scales (reference quantiles) the raw distances are divided by."""

    means: np.ndarray
    whiten: np.ndarray
    input_mean: np.ndarray
    components: np.ndarray
    scales: tuple[float, float]
    digest: str

    @classmethod
    @torch.no_grad()
    def fit(cls, model: LayeredNet, data: Dataset, quantile: float = 0.99, components: int = 32, ridge: float = 1e-3) -> "FeatureStats":
        model.eval()
        emb = torch.cat([model.embed(x) for x in data.x.split(512)]).double()
        classes = sorted(set(data.y.tolist()))
        means = torch.stack([emb[data.y == c].mean(0) for c in classes])
        centred = emb - means[torch.searchsorted(torch.tensor(classes), data.y)]
        cov = centred.T @ centred / len(emb)
        precision = torch.linalg.inv(cov + ridge * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype))
        whiten = torch.linalg.cholesky(precision)  # precision = W W^T, so ||(e - mu) W|| is the Mahalanobis distance
        flat = data.x.flatten(1).double()
        input_mean = flat.mean(0)
        basis = torch.linalg.svd(flat - input_mean, full_matrices=False).Vh[:components].T
        arrays = [t.numpy() for t in (means @ whiten, whiten, input_mean, basis)]
        feature, residual = cls(*arrays, (1.0, 1.0), data.digest()).distances(flat.numpy(), emb.numpy())
        scales = (float(np.quantile(feature, quantile)), float(np.quantile(residual, quantile)))
        return cls(*arrays, scales, data.digest())

    def distances(self, x: np.ndarray, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per input (flattened rows of `x` and `emb`): Mahalanobis distance of `emb` to the closest class
        mean, and the PCA residual norm of `x`."""
        z = emb.astype(np.float64) @ self.whiten
        feature = np.sqrt(np.maximum(((z[:, None, :] - self.means[None]) ** 2).sum(-1), 0)).min(1)
        centred = x.astype(np.float64) - self.input_mean
        residual = np.linalg.norm(centred - (centred @ self.components) @ self.components.T, axis=1)
        return feature, residual

    def score(self, x: np.ndarray, emb: np.ndarray) -> np.ndarray:
        """max(feature distance / its scale, residual / its scale): above 1 is out of distribution."""
        feature, residual = self.distances(x, emb)
        return np.maximum(feature / self.scales[0], residual / self.scales[1])
