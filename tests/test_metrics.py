"""Metrics and shared statistics, each checked against values computed by hand on tiny tensors."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError
from modelinv.metrics import METRICS, MetricInputs, compute, describe_metrics, run_evaluator
from modelinv.stats import distance_correlation, frechet_distance


class Identity(nn.Module):
    """A fake evaluator: logits and penultimate features are the pixels themselves."""

    def forward(self, x):
        return x.flatten(1)

    def embed(self, x):
        return x.flatten(1)


def images(*rows, shape=(1, 1, -1)):
    """(N, *shape) float64 images from nested lists of pixel values."""
    return torch.tensor(rows, dtype=torch.float64).reshape(len(rows), *shape)


def private(x, y):
    return Dataset(x=x, y=torch.tensor(y), classes=("a", "b"), name="private")


def metric(name, **inputs):
    inputs.setdefault("labels", torch.zeros(len(inputs["reconstructions"]), dtype=torch.int64))
    return compute([name], MetricInputs(**inputs))[name]


# --- pixel metrics ----------------------------------------------------------------------------------

TRUTH = torch.zeros(2, 1, 2, 2)
RECON = torch.tensor([[[[0.5, 0.0], [0.0, 0.0]]], [[[0.1, 0.1], [0.1, 0.1]]]])
# per-image MSE: 0.25 / 4 = 0.0625 and 0.01


def test_mse_by_hand():
    assert metric("mse", reconstructions=RECON, truth=TRUTH) == pytest.approx((0.0625 + 0.01) / 2)
    assert metric("mse", reconstructions=TRUTH, truth=TRUTH) == 0.0


def test_psnr_is_per_image_then_averaged():
    # 10 log10(1 / 0.0625) = 10 log10(16) and 10 log10(1 / 0.01) = 20
    expected = (10 * math.log10(16) + 20) / 2
    assert metric("psnr", reconstructions=RECON, truth=TRUTH) == pytest.approx(expected)
    assert expected > 10 * math.log10(1 / ((0.0625 + 0.01) / 2))  # not the PSNR of the pooled MSE


def test_psnr_caps_identical_images_at_100_db():
    recon = torch.stack([TRUTH[0], RECON[1]])
    assert metric("psnr", reconstructions=TRUTH, truth=TRUTH) == 100.0
    assert metric("psnr", reconstructions=recon, truth=TRUTH) == pytest.approx((100 + 20) / 2)


def test_ssim_identity_and_constant_shift():
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert metric("ssim", reconstructions=x, truth=x) == pytest.approx(1.0)
    # Constant images a, b: every window has means a, b and zero (co)variances, so eq. 13 gives
    # (2ab + C1) / (a^2 + b^2 + C1) * (0 + C2) / (0 + C2), with C1 = 0.01^2.
    a, b, c1 = 0.2, 0.6, 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    value = metric("ssim", reconstructions=torch.full((2, 1, 8, 8), b), truth=torch.full((2, 1, 8, 8), a))
    assert value == pytest.approx(expected, rel=1e-6)


def test_ssim_orders_by_noise_and_fits_small_images():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 16, 16, generator=gen)
    noise = torch.randn(x.shape, generator=gen)
    slight = metric("ssim", reconstructions=(x + 0.05 * noise).clamp(0, 1), truth=x)
    heavy = metric("ssim", reconstructions=(x + 0.3 * noise).clamp(0, 1), truth=x)
    assert 1.0 > slight > heavy
    tiny = torch.rand(2, 1, 3, 3, generator=gen)  # a 3x3 window
    assert metric("ssim", reconstructions=tiny, truth=tiny) == pytest.approx(1.0)
    with pytest.raises(ModelinvError, match="ssim.*3x3"):
        metric("ssim", reconstructions=RECON, truth=TRUTH)


# --- evaluator metrics ------------------------------------------------------------------------------


def test_attack_accuracy_top1_top5_with_chosen_logits():
    logits = images(
        [0.9, 0.1, 0.2, 0.3, 0.4, 0.5],  # label 0: top-1 hit
        [0.1, 0.9, 0.8, 0.7, 0.6, 0.5],  # label 2: second best, top-5 hit only
        [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # label 5: the worst class, miss
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # label 5: top-1 hit
    )
    inputs = MetricInputs(reconstructions=logits, labels=torch.tensor([0, 2, 5, 5]), evaluator=Identity())
    assert compute(["attack_acc_top1", "attack_acc_top5"], inputs) == {"attack_acc_top1": 0.5, "attack_acc_top5": 0.75}


def test_attack_accuracy_clamps_k_to_the_class_count():
    logits = images([0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    assert metric("attack_acc_top5", reconstructions=logits, labels=torch.tensor([0, 2]), evaluator=Identity()) == 1.0
    assert metric("attack_acc_top1", reconstructions=logits, labels=torch.tensor([0, 2]), evaluator=Identity()) == 0.0


def test_knn_dist_uses_nearest_private_sample_of_the_same_class():
    priv = private(images([0, 0], [1, 0], [0, 1], [3, 3]), [0, 0, 1, 1])
    recon = images([0.5, 0], [0.2, 0.9], [2, 2])
    # (0.5,0) class 0: 0.25 to both; (0.2,0.9) class 1: 0.04 + 0.01 to (0,1);
    # (2,2) class 0: 1 + 4 to (1,0), although (3,3) of class 1 is nearer.
    labels = torch.tensor([0, 1, 0])
    value = metric("knn_dist", reconstructions=recon, labels=labels, evaluator=Identity(), private=priv)
    assert value == pytest.approx((0.25 + 0.05 + 5) / 3)
    with pytest.raises(ModelinvError, match="knn_dist.*class 1"):
        metric("knn_dist", reconstructions=recon, labels=labels, evaluator=Identity(), private=priv.subset(priv.y == 0))


def test_knn_ratio_compares_with_real_held_out_images():
    priv = private(images([0, 0], [1, 0], [0, 1], [3, 3]), [0, 0, 1, 1])
    holdout = private(images([0, 0.5], [3, 2], [9, 9]), [0, 1, 2])  # class 2 is not inverted and ignored
    recon = images([0.5, 0], [0.2, 0.9], [2, 2])
    labels = torch.tensor([0, 1, 0])
    # holdout: (0,0.5) class 0 -> 0.25 to (0,0); (3,2) class 1 -> 1 to (3,3); mean 0.625
    value = metric("knn_ratio", reconstructions=recon, labels=labels, evaluator=Identity(), private=priv, holdout=holdout)
    assert value == pytest.approx(((0.25 + 0.05 + 5) / 3) / 0.625)
    with pytest.raises(ModelinvError, match="'knn_ratio' needs holdout"):
        metric("knn_ratio", reconstructions=recon, labels=labels, evaluator=Identity(), private=priv)


def test_fid_eval_in_one_dimension():
    recon = images([0.0], [2.0])  # mean 1, unbiased variance 2
    priv = private(images([1.0], [2.0], [3.0], [6.0]), [0, 0, 1, 1])  # mean 3, variance 14 / 3
    expected = (1 - 3) ** 2 + 2 + 14 / 3 - 2 * math.sqrt(2 * 14 / 3)
    assert metric("fid_eval", reconstructions=recon, evaluator=Identity(), private=priv) == pytest.approx(expected)
    assert metric("fid_eval", reconstructions=priv.x, evaluator=Identity(), private=priv) == pytest.approx(0, abs=1e-9)


def test_run_evaluator_batches_in_eval_mode_without_gradients():
    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 3)
            self.calls = []

        def forward(self, x):
            self.calls.append((len(x), self.training, torch.is_grad_enabled()))
            return self.lin(x)

    net = Recorder().train()
    out = run_evaluator(net, torch.rand(600, 2))
    assert out.shape == (600, 3) and not out.requires_grad
    assert net.calls == [(256, False, False), (256, False, False), (88, False, False)]
    assert net.training
    with pytest.raises(ModelinvError, match="embed"):
        run_evaluator(net, torch.rand(2, 2), embed=True)


# --- distance correlation ---------------------------------------------------------------------------


def naive_dcor(x, y):
    """Szekely et al. (2007) written with explicit loops, as a reference."""
    n = len(x)
    a = [[float(np.linalg.norm(x[j] - x[k])) for k in range(n)] for j in range(n)]
    b = [[float(np.linalg.norm(y[j] - y[k])) for k in range(n)] for j in range(n)]

    def centred(d):
        row = [sum(r) / n for r in d]
        grand = sum(row) / n
        return [[d[j][k] - row[j] - row[k] + grand for k in range(n)] for j in range(n)]

    A, B = centred(a), centred(b)
    mean = lambda P, Q: sum(P[j][k] * Q[j][k] for j in range(n) for k in range(n)) / n**2  # noqa: E731
    return math.sqrt(mean(A, B) / math.sqrt(mean(A, A) * mean(B, B)))


def test_dcor_by_hand_and_against_a_loop_reference():
    # x = (0, 1, 2), y = (0, 1, 0): dCov^2 = 8/81, dVar^2 = 40/81 and 16/81, so dCor^2 = 1 / sqrt(10).
    x, y = torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([[0.0], [1.0], [0.0]])
    assert distance_correlation(x, y).item() == pytest.approx(10 ** (-1 / 4), rel=1e-6)
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(6, 1, 2, 2, generator=gen, dtype=torch.float64)  # flattened to 4-D samples
    y = torch.rand(6, 3, generator=gen, dtype=torch.float64)
    assert distance_correlation(x, y).item() == pytest.approx(naive_dcor(x.flatten(1).numpy(), y.numpy()))
    recon = x.flip(0) ** 2
    expected = naive_dcor(x.flatten(1).numpy(), recon.flatten(1).numpy())
    assert metric("dcor", reconstructions=recon, truth=x) == pytest.approx(expected)


def test_dcor_is_one_for_affine_maps_and_near_zero_for_independent_samples():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(50, 1, 2, 2, generator=gen)
    assert metric("dcor", reconstructions=2 * x + 1, truth=x) == pytest.approx(1.0, abs=1e-5)
    a, b = torch.randn(2000, 1, generator=gen), torch.randn(2000, 1, generator=gen)
    assert distance_correlation(a, b).item() < 0.1  # the sample statistic is biased upwards, about 0.04 here
    assert distance_correlation(a, torch.zeros(2000, 1)).item() == 0.0  # a constant has zero distance variance


def test_distance_correlation_is_differentiable():
    gen = torch.Generator().manual_seed(4)
    base = torch.randn(8, 5, generator=gen)
    x = torch.cat([base, base[:1]]).requires_grad_()  # a repeated sample: zero distances off the diagonal
    loss = distance_correlation(x, torch.randn(9, 3, generator=gen))
    assert loss.ndim == 0 and 0 <= loss.item() <= 1
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# --- Frechet distance -------------------------------------------------------------------------------


def test_frechet_distance_by_hand_symmetric_and_zero_for_identical_gaussians():
    # Diagonal covariances: Tr (S1 S2)^(1/2) = sum sqrt(s1_i s2_i).
    value = frechet_distance(np.array([0.0, 1.0]), np.diag([1.0, 4.0]), np.array([1.0, 1.0]), np.diag([4.0, 9.0]))
    assert value == pytest.approx(1 + (1 + 4 + 4 + 9) - 2 * (2 + 6))
    gen = np.random.default_rng(5)
    f1, f2 = gen.normal(size=(3, 6)), gen.normal(size=(40, 6))  # 3 samples in 6-D: a singular covariance
    fits = [(f.mean(0), np.cov(f, rowvar=False)) for f in (f1, f2)]
    forward, backward = frechet_distance(*fits[0], *fits[1]), frechet_distance(*fits[1], *fits[0])
    assert np.isfinite(forward) and forward == pytest.approx(backward)
    assert frechet_distance(*fits[0], *fits[0]) == pytest.approx(0, abs=1e-9)
    assert frechet_distance(*map(torch.from_numpy, fits[1]), *fits[1]) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_matches_scipy_sqrtm_on_full_rank_covariances():
    gen = np.random.default_rng(6)
    f1, f2 = gen.normal(size=(50, 4)), gen.normal(1.0, 2.0, size=(50, 4))
    (m1, s1), (m2, s2) = [(f.mean(0), np.cov(f, rowvar=False)) for f in (f1, f2)]
    expected = (m1 - m2) @ (m1 - m2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(expected)


# --- registry and compute() -------------------------------------------------------------------------


def test_compute_names_the_metric_and_what_it_lacks():
    with pytest.raises(ModelinvError, match="'psnr' needs truth"):
        compute(["psnr"], MetricInputs(reconstructions=RECON, labels=torch.zeros(2, dtype=torch.int64)))
    with pytest.raises(ModelinvError, match="'knn_dist' needs private"):
        metric("knn_dist", reconstructions=RECON, evaluator=Identity())
    with pytest.raises(ModelinvError, match="'fid_eval' needs evaluator .* and private"):
        metric("fid_eval", reconstructions=RECON)
    with pytest.raises(ModelinvError, match="unknown metric 'nope'"):
        metric("nope", reconstructions=RECON)
    with pytest.raises(ModelinvError, match="labels"):
        MetricInputs(reconstructions=RECON, labels=torch.zeros(3, dtype=torch.int64))


def test_describe_metrics_lists_every_metric():
    described = {d["name"]: d for d in describe_metrics()}
    assert set(described) == set(METRICS.names()) == {
        "mse", "psnr", "ssim", "attack_acc_top1", "attack_acc_top5", "knn_dist", "knn_ratio", "fid_eval", "dcor",
        "attr_acc", "attr_precision", "attr_recall", "attr_baseline_acc", "attr_ideal_acc", "attr_advantage",
    }
    assert described["psnr"]["needs"] == ["truth"] and described["psnr"]["higher_is_better"] is True
    assert described["knn_dist"]["needs"] == ["evaluator", "private"] and not described["knn_dist"]["higher_is_better"]
    assert "top-5" in described["attack_acc_top5"]["summary"]
