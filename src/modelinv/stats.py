"""Statistics shared across the library: distance correlation (a metric and a training loss), normalised
HSIC (a training loss) and the Frechet distance between Gaussians (FID-style metrics)."""

from __future__ import annotations

import numpy as np
import torch

from modelinv.errors import ModelinvError

_TINY = 1e-30  # keeps square roots away from 0, where their gradient is infinite


def _double_centered_distances(z: torch.Tensor) -> torch.Tensor:
    """A_jk = a_jk - mean_j a_jk - mean_k a_jk + mean a, with a_jk = ||z_j - z_k||."""
    # The direct (not matrix-product) kernel gives exact zeros on the diagonal and finite gradients there.
    a = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")
    return a - a.mean(dim=0, keepdim=True) - a.mean(dim=1, keepdim=True) + a.mean()


def distance_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sample distance correlation dCor(x, y) of Szekely, Rizzo & Bakirov (Ann. Stat. 2007), in [0, 1].

    `x` and `y` hold n paired samples (n, ...), flattened per sample. With A, B the double-centred
    distance matrices, dCov^2 = mean(A * B), dVar^2(x) = mean(A * A), and (eq. 2.8)
    dCor^2 = dCov^2(x, y) / sqrt(dVar^2(x) dVar^2(y)), taken as 0 when either variance is 0.
    It is 0 only for independent variables (in the population limit) and 1 for y = a + b C x with C
    orthogonal. Differentiable: the NoPeek defense (Vepakomma et al. 2020) minimises it as a loss.
    """
    if x.shape[0] != y.shape[0]:
        raise ModelinvError(f"distance correlation needs paired samples; got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] < 2:
        raise ModelinvError(f"distance correlation needs at least 2 samples; got {x.shape[0]}")
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    a = _double_centered_distances(x.reshape(x.shape[0], -1).to(dtype))
    b = _double_centered_distances(y.reshape(y.shape[0], -1).to(dtype))
    dvar = (a * a).mean() * (b * b).mean()
    dcor2 = (a * b).mean() / dvar.clamp_min(_TINY).sqrt()
    dcor2 = torch.where(dvar > 0, dcor2, torch.zeros_like(dcor2)).clamp(0.0, 1.0)
    return torch.where(dcor2 > 0, dcor2.clamp_min(_TINY).sqrt(), dcor2)


def gaussian_kernel(z: torch.Tensor, sigma: float) -> torch.Tensor:
    """K_jk = exp(-||z_j - z_k||^2 / (2 sigma^2 d)) over the n samples of `z` flattened to d features."""
    z = z.reshape(z.shape[0], -1)
    return torch.exp(-torch.cdist(z, z).pow(2) / (2 * sigma**2 * z.shape[1]))


def linear_kernel(z: torch.Tensor) -> torch.Tensor:
    """K = Z Z^T over the samples of `z` flattened."""
    z = z.reshape(z.shape[0], -1)
    return z @ z.T


def normalized_hsic(kx: torch.Tensor, ky: torch.Tensor, ridge: float = 1e-5) -> torch.Tensor:
    """Normalised HSIC of two kernel matrices over n paired samples (Fukumizu et al., NIPS 2008), as
    BiDO (Peng et al., KDD 2022) computes it: with K~ = K H (H = I - 11^T / n) and
    R = K~ (K~ + ridge n I)^-1, nHSIC = tr(R_x R_y). Larger the more dependent; differentiable.
    """
    n = kx.shape[0]
    eye = torch.eye(n, dtype=kx.dtype)
    centre = eye - 1.0 / n

    def resolvent(k: torch.Tensor) -> torch.Tensor:
        k = k @ centre
        return k @ torch.linalg.inv(k + ridge * n * eye)

    return (resolvent(kx) * resolvent(ky).T).sum()


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2) (Dowson & Landau 1982; FID,
    Heusel et al. 2017): ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    Arrays or tensors in, float out, in float64. Tr (S1 S2)^(1/2) is computed as the sum of square roots
    of the eigenvalues of the symmetric PSD matrix S1^(1/2) S2 S1^(1/2), which has the same spectrum
    as S1 S2; unlike a general matrix square root (scipy.linalg.sqrtm) this stays real and finite
    for the singular covariances of fewer samples than dimensions.
    """
    mu1, mu2 = (np.atleast_1d(_float64(m)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(_float64(s)) for s in (sigma1, sigma2))
    if not mu1.shape == mu2.shape == sigma1.shape[:1] == sigma2.shape[:1] or sigma1.shape != sigma2.shape:
        raise ModelinvError(
            f"frechet distance needs means (d,) and covariances (d, d) of one size; got {mu1.shape}, "
            f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}"
        )
    root1 = _psd_sqrt(sigma1)
    cross = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.sqrt(cross.clip(min=0.0)).sum()
    return float(max(value, 0.0))


def _float64(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a (numerically) positive semi-definite matrix; negative eigenvalues -> 0."""
    w, v = np.linalg.eigh((s + s.T) / 2.0)
    return (v * np.sqrt(w.clip(min=0.0))) @ v.T
