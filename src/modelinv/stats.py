"""Statistics shared across the library: distance correlation (the bias-corrected estimator, a metric; the
V-statistic, a training loss), normalised HSIC (a training loss) and the Frechet distance between Gaussians
(FID-style metrics)."""

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
    """Sample distance correlation dCor_n(x, y), the V-statistic of Szekely, Rizzo & Bakirov (Ann. Stat. 2007), in [0, 1].

    `x` and `y` hold n paired samples (n, ...), flattened per sample. With A, B the double-centred
    distance matrices, dCov^2 = mean(A * B), dVar^2(x) = mean(A * A), and (eq. 2.8)
    dCor^2 = dCov^2(x, y) / sqrt(dVar^2(x) dVar^2(y)), taken as 0 when either variance is 0; returns dCor.
    1 for y = a + b C x with C orthogonal, but biased upwards: near 1 for independent samples when n is
    small for their dimension. Differentiable: the NoPeek defense (Vepakomma et al. 2020) minimises it as
    a loss. The `dcor` metric reports bias_corrected_distance_correlation instead.

    Shape: x (n, ...), y (n, ...) -> scalar tensor.
    Example: distance_correlation(x, 2 * x + 1) -> tensor(1.); tensor([[0.], [1.], [2.]]) against
    tensor([[0.], [1.], [0.]]) -> 10 ** (-1 / 4) = 0.562.
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


def _u_centered_distances(z: torch.Tensor) -> torch.Tensor:
    """A~_jk = a_jk - a_j. / (n - 2) - a_.k / (n - 2) + a_.. / ((n - 1)(n - 2)) off the diagonal, 0 on it,
    with a_jk = ||z_j - z_k|| and dots for sums: the U-centred distance matrix of Szekely & Rizzo (2014)."""
    n = z.shape[0]
    a = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")
    rows = a.sum(dim=1, keepdim=True)
    u = a - rows / (n - 2) - rows.T / (n - 2) + a.sum() / ((n - 1) * (n - 2))
    return u.fill_diagonal_(0.0)


def bias_corrected_distance_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bias-corrected distance correlation R*_n(x, y) of Szekely & Rizzo ("Partial distance correlation with
    methods for dissimilarities", Ann. Stat. 2014), an estimator of the squared population dCor.

    `x` and `y` hold n >= 4 paired samples (n, ...), flattened per sample. With A~, B~ their U-centred
    distance matrices and the inner product (A~ . B~) = sum_{j != k} A~_jk B~_jk / (n (n - 3)), an unbiased
    estimator of dCov^2(x, y), the bias-corrected dCor is R* = (A~ . B~) / sqrt((A~ . A~)(B~ . B~)),
    taken as 0 when either factor is 0. It is 1 for y = a + b C x (C orthogonal) and centred near 0 for
    independent samples at any n and dimension (in high dimension with spread 1 / sqrt(n (n - 3) / 2 - 1),
    0.023 at n = 64; Szekely & Rizzo, J. Multivar. Anal. 2013), so it can be slightly negative: no square
    root is taken. Equals the `dcor` package's u_distance_correlation_sqr.

    Shape: x (n, ...), y (n, ...) -> scalar float64 tensor.
    Example: bias_corrected_distance_correlation(x, 2 * x + 1) -> tensor(1.); for 64 independent pairs of
    uniform random 784-pixel images, 0.009 (the V-statistic distance_correlation gives 0.990).
    """
    n = x.shape[0]
    if y.shape[0] != n:
        raise ModelinvError(f"distance correlation needs paired samples; got {n} and {y.shape[0]}")
    if n < 4:
        raise ModelinvError(f"bias-corrected distance correlation needs at least 4 samples; got {n}")
    a = _u_centered_distances(x.reshape(n, -1).double())
    b = _u_centered_distances(y.reshape(n, -1).double())
    ab, aa, bb = ((p * q).sum() / (n * (n - 3)) for p, q in ((a, b), (a, a), (b, b)))
    denominator = (aa * bb).sqrt()
    return ab / denominator if denominator > 0 else torch.zeros((), dtype=torch.float64)


def gaussian_kernel(z: torch.Tensor, sigma: float) -> torch.Tensor:
    """K_jk = exp(-||z_j - z_k||^2 / (2 sigma^2 d)) over the n samples of `z` flattened to d features.

    Shape: z (n, ...) -> (n, n).
    Example: gaussian_kernel(z, 1.0).diagonal() -> ones (n,).
    """
    z = z.reshape(z.shape[0], -1)
    return torch.exp(-torch.cdist(z, z).pow(2) / (2 * sigma**2 * z.shape[1]))


def linear_kernel(z: torch.Tensor) -> torch.Tensor:
    """K = Z Z^T over the samples of `z` flattened.

    Shape: z (n, ...) -> (n, n).
    Example: linear_kernel(torch.tensor([[1.0, 2.0]])) -> tensor([[5.]]).
    """
    z = z.reshape(z.shape[0], -1)
    return z @ z.T


def normalized_hsic(kx: torch.Tensor, ky: torch.Tensor, ridge: float = 1e-5) -> torch.Tensor:
    """Normalised HSIC of two kernel matrices over n paired samples (Fukumizu et al., NIPS 2008), as
    BiDO (Peng et al., KDD 2022) computes it: with K~ = K H (H = I - 11^T / n) and
    R = K~ (K~ + ridge n I)^-1, nHSIC = tr(R_x R_y). Larger the more dependent; differentiable.

    Shape: kx, ky (n, n) -> scalar tensor.
    Example: normalized_hsic(linear_kernel(x), linear_kernel(x)) > normalized_hsic(linear_kernel(x), linear_kernel(y))
    for y independent of x.
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

    Shape: mu1, mu2 (d,), sigma1, sigma2 (d, d) -> a float.
    Example: frechet_distance([0, 1], diag(1, 4), [1, 1], diag(4, 9)) = 1 + 18 - 2 (2 + 6) = 3.
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
