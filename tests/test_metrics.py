"""Metrics and shared statistics, each checked against values computed by hand on tiny tensors, and against
independent implementations: scikit-image for SSIM and PSNR, explicit loops over the papers' formulas for dCor."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.distance import pdist
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # the `test` extra: the reference for SSIM and PSNR
from torch import nn

from modelinv import data
from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError
from modelinv.metrics import METRICS, MetricInputs, compute, describe_metrics, run_evaluator
from modelinv.metrics.ssim import ssim_per_image
from modelinv.stats import bias_corrected_distance_correlation, distance_correlation, frechet_distance


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


def test_psnr_matches_scikit_image_per_image():
    gen = torch.Generator().manual_seed(7)
    digits = data.load("mnist5k").x[:6].double()
    truth = torch.cat([digits, torch.rand(4, 1, 28, 28, generator=gen, dtype=torch.float64)])
    recon = (truth + torch.linspace(0.01, 0.5, 10, dtype=torch.float64).view(-1, 1, 1, 1) * torch.randn(truth.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    recon[0] = 0.0  # a blank answer
    expected = [peak_signal_noise_ratio(t.numpy(), r.numpy(), data_range=1.0) for t, r in zip(truth, recon)]
    assert metric("psnr", reconstructions=recon, truth=truth) == pytest.approx(np.mean(expected), rel=1e-6)
    for i in (0, 5, 9):
        assert metric("psnr", reconstructions=recon[i : i + 1], truth=truth[i : i + 1]) == pytest.approx(expected[i], rel=1e-6)


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


def skimage_ssim(x_hat, x):
    """scikit-image's SSIM of one (C, H, W) pair as Wang et al. (2004) define it, with the window our fallback uses."""
    size = min(x.shape[-2:])
    win_size = min(11, size if size % 2 else size - 1)
    return structural_similarity(
        x_hat.numpy(), x.numpy(), data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=0, win_size=win_size
    )


def ssim_pairs():
    """(name, reconstruction, truth) pairs of single images: noise levels, blank, shifted, other digits; 28x28, 25x25, RGB, 8x8."""
    gen = torch.Generator().manual_seed(8)

    def noisy(x, level):
        return (x + level * torch.randn(x.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)

    mnist = data.load("mnist5k").x[:4].double()
    digits8 = data.load("digits").x[:3].double()
    grey = torch.rand(3, 1, 25, 25, generator=gen, dtype=torch.float64)
    rgb = torch.rand(3, 3, 32, 32, generator=gen, dtype=torch.float64)
    pairs = [(f"mnist+N(0,{s})", noisy(mnist[0], s), mnist[0]) for s in (0.02, 0.1, 0.3, 1.0)]
    pairs += [("mnist vs blank", torch.zeros_like(mnist[1]), mnist[1]), ("blank vs mnist", mnist[1], torch.zeros_like(mnist[1]))]
    pairs += [("blank vs blank", torch.zeros_like(mnist[0]), torch.zeros_like(mnist[0])), ("mnist vs itself", mnist[2], mnist[2])]
    pairs += [("mnist shifted 2 px", mnist[2].roll(2, -1), mnist[2]), ("mnist shifted 1 px down", mnist[3].roll(1, -2), mnist[3])]
    pairs += [("mnist vs another digit", mnist[0], mnist[3]), ("mnist vs its negative", 1 - mnist[1], mnist[1])]
    pairs += [(f"25x25 grey+N(0,{s})", noisy(grey[i], s), grey[i]) for i, s in enumerate((0.05, 0.2, 0.5))]
    pairs += [("25x25 unrelated noise", grey[0], grey[1])]
    pairs += [(f"32x32 RGB+N(0,{s})", noisy(rgb[i], s), rgb[i]) for i, s in enumerate((0.05, 0.3))]
    pairs += [("32x32 RGB shifted", rgb[2].roll(3, -1), rgb[2])]
    pairs += [(f"8x8 digit+N(0,{s})", noisy(digits8[0], s), digits8[0]) for s in (0.1, 0.4)]
    pairs += [("8x8 digit vs blank", torch.zeros_like(digits8[1]), digits8[1]), ("8x8 digit vs another", digits8[1], digits8[2])]
    pairs += [("9x9 crop", noisy(mnist[0][:, 10:19, 10:19], 0.1), mnist[0][:, 10:19, 10:19]), ("5x6 crop", noisy(mnist[0][:, 12:17, 10:16], 0.1), mnist[0][:, 12:17, 10:16])]
    return pairs


def test_ssim_matches_scikit_image_on_many_pairs():
    pairs = ssim_pairs()
    assert len(pairs) >= 20
    for name, x_hat, x in pairs:
        ours = ssim_per_image(x_hat[None], x[None]).item()
        assert ours == pytest.approx(skimage_ssim(x_hat, x), abs=1e-8), name
    # In a batch, the metric is the mean of the per-image values.
    mnist = [(x_hat, x) for name, x_hat, x in pairs if x.shape == (1, 28, 28)]
    recon, truth = torch.stack([p[0] for p in mnist]), torch.stack([p[1] for p in mnist])
    expected = np.mean([skimage_ssim(x_hat, x) for x_hat, x in mnist])
    assert metric("ssim", reconstructions=recon.float(), truth=truth.float()) == pytest.approx(expected, abs=1e-6)


def test_ssim_is_the_papers_not_torchmetrics_padded_average():
    # torchmetrics averages its map over the reflect-padded border too; on a digit against a blank image it says about 0.33.
    digit = data.load("mnist5k").x[:1].double()
    value = metric("ssim", reconstructions=torch.zeros_like(digit), truth=digit)
    assert value == pytest.approx(skimage_ssim(torch.zeros_like(digit[0]), digit[0]), abs=1e-8) and value < 0.05


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


def test_attack_accuracy_top_k_is_none_when_k_covers_every_class():
    gen = torch.Generator().manual_seed(9)
    labels = torch.tensor([0, 1, 2, 3, 4, 4])
    five = MetricInputs(reconstructions=torch.rand(6, 5, generator=gen), labels=labels, evaluator=Identity())
    assert compute(["attack_acc_top1", "attack_acc_top5"], five)["attack_acc_top5"] is None  # 5 classes: top-5 always 1
    assert isinstance(compute(["attack_acc_top1"], five)["attack_acc_top1"], float)
    ten = MetricInputs(reconstructions=torch.rand(6, 10, generator=gen), labels=labels, evaluator=Identity())
    assert 0.0 <= compute(["attack_acc_top5"], ten)["attack_acc_top5"] <= 1.0
    three = MetricInputs(reconstructions=images([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]), labels=torch.tensor([0, 2]), evaluator=Identity())
    assert compute(["attack_acc_top1", "attack_acc_top5"], three) == {"attack_acc_top1": 0.0, "attack_acc_top5": None}


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


def test_diversity_ratio_is_the_within_class_pairwise_spread_against_real_images_as_scipy_computes_it():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(40, 5))  # two classes of 20 real held-out feature vectors
    real_y = np.repeat([0, 1], 20)
    recon = np.concatenate([rng.normal(size=(6, 5)) * 0.5, rng.normal(size=(9, 5)) * 2.0])
    labels = np.repeat([0, 1], [6, 9])
    holdout = private(torch.tensor(real, dtype=torch.float32).view(40, 1, 1, 5), real_y.tolist())
    value = metric("diversity_ratio", reconstructions=torch.tensor(recon, dtype=torch.float32).view(15, 1, 1, 5), labels=torch.tensor(labels),
                   evaluator=Identity(), holdout=holdout)
    # the definition: per class the mean squared distance over pairs, summed over classes, fake over real
    spread = lambda z: pdist(z, "sqeuclidean").mean()  # noqa: E731
    expected = sum(spread(recon[labels == c].astype(np.float32)) for c in (0, 1)) / sum(spread(real[real_y == c].astype(np.float32)) for c in (0, 1))
    assert value == pytest.approx(expected, rel=1e-5)
    copies = torch.tensor(recon[:1], dtype=torch.float32).view(1, 1, 1, 5).repeat(20, 1, 1, 1)  # a collapsed search: one image 20 times
    assert metric("diversity_ratio", reconstructions=copies, labels=torch.zeros(20, dtype=torch.int64), evaluator=Identity(), holdout=holdout) == 0.0
    assert metric("diversity_ratio", reconstructions=holdout.x, labels=holdout.y, evaluator=Identity(), holdout=holdout) == pytest.approx(1.0)
    assert metric("diversity_ratio", reconstructions=copies[:1], labels=torch.zeros(1, dtype=torch.int64), evaluator=Identity(), holdout=holdout) is None


def test_fid_eval_is_per_class_then_averaged_in_one_dimension():
    # Private class 0: (1, 2), mean 1.5, unbiased variance 0.5; class 1: (3, 6), mean 4.5, variance 4.5;
    # class 2 (one sample) is not inverted and ignored.
    priv = private(images([1.0], [2.0], [3.0], [6.0], [9.0]), [0, 0, 1, 1, 2])
    recon, labels = images([0.0], [2.0], [4.0], [5.0]), torch.tensor([0, 0, 1, 1])
    class0 = (1 - 1.5) ** 2 + 2 + 0.5 - 2 * math.sqrt(2 * 0.5)  # (0, 2): mean 1, variance 2 -> 0.75
    class1 = (4.5 - 4.5) ** 2 + 0.5 + 4.5 - 2 * math.sqrt(0.5 * 4.5)  # (4, 5): mean 4.5, variance 0.5 -> 2
    value = metric("fid_eval", reconstructions=recon, labels=labels, evaluator=Identity(), private=priv)
    assert value == pytest.approx((class0 + class1) / 2) and value == pytest.approx(1.375)
    # The same images under swapped labels: a class-blind fit would not change; this one does.
    swapped = metric("fid_eval", reconstructions=recon, labels=1 - labels, evaluator=Identity(), private=priv)
    assert swapped == pytest.approx(((1 - 4.5) ** 2 + 2 + 4.5 - 2 * 3 + (4.5 - 1.5) ** 2 + 0.5 + 0.5 - 2 * 0.5) / 2)
    first4 = priv.subset(priv.y < 2)
    assert metric("fid_eval", reconstructions=first4.x, labels=first4.y, evaluator=Identity(), private=priv) == pytest.approx(0, abs=1e-9)


def test_fid_eval_is_none_for_a_class_of_one_reconstruction_and_needs_two_private_samples():
    priv = private(images([1.0], [2.0], [3.0], [6.0], [9.0]), [0, 0, 1, 1, 2])
    recon = images([0.0], [2.0], [4.0])
    assert metric("fid_eval", reconstructions=recon, labels=torch.tensor([0, 0, 1]), evaluator=Identity(), private=priv) is None
    with pytest.raises(ModelinvError, match="'fid_eval' needs at least 2 private samples of class 2 .*; got 1"):
        metric("fid_eval", reconstructions=recon, labels=torch.tensor([0, 2, 2]), evaluator=Identity(), private=priv)


def per_class(ds, n, seed):
    """n random images of every class of `ds`, grouped by class, with their labels."""
    gen = torch.Generator().manual_seed(seed)
    pick = torch.cat([(ds.y == c).nonzero().flatten()[torch.randperm(int((ds.y == c).sum()), generator=gen)[:n]] for c in range(ds.num_classes)])
    return ds.x[pick], ds.y[pick]


def test_fid_eval_ranks_real_images_of_the_right_class_near_the_floor_and_wrong_classes_far_above(mnist_splits):
    # 2x2-pooled pixels (196-d) stand in for the judge's features to keep the test cheap. With an eval-cnn
    # judge (3 epochs) the same answers, 20 per class, score about 46 (right class), 1340 (wrong class),
    # 41 (the private training images themselves), 540 (class means), 1035 (mean public), 1120 (blank).
    class Pooled(nn.Module):
        def forward(self, x):
            return nn.functional.avg_pool2d(x, 2).flatten(1)

        embed = forward

    train, n = mnist_splits.private_train, 20
    x, y = per_class(mnist_splits.private_test, n, seed=0)

    def fid(images, labels=y):
        return metric("fid_eval", reconstructions=images, labels=labels, evaluator=Pooled(), private=train)

    right, wrong = fid(x), fid(x, (y + 1) % 10)  # real held-out digits labelled as their own class, or the next
    memorised = fid(per_class(train, n, seed=0)[0])  # images from the reference set itself: the floor at this n
    class_means = fid(torch.stack([train.x[train.y == c].mean(0) for c in range(10)])[y])
    mean_public = fid(mnist_splits.public.x.mean(0).expand_as(x))
    blank = fid(torch.zeros_like(x))
    # Measured: 4.31, 15.08, 3.59, 7.64, 10.20, 18.89.
    assert wrong > 2.5 * right
    assert memorised < right < 1.4 * memorised
    assert right < min(class_means, mean_public, blank, wrong)


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
    """The V-statistic dCor of Szekely et al. (2007) written with explicit loops, as a reference."""
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


def naive_bias_corrected_dcor(x, y):
    """Szekely & Rizzo (2014) written with explicit loops: U-centred distance matrices, the inner product
    (A~ . B~) = sum_{j != k} A~_jk B~_jk / (n (n - 3)), and R* = (A~ . B~) / sqrt((A~ . A~)(B~ . B~))."""
    n = len(x)

    def u_centred(z):
        d = [[float(np.linalg.norm(z[j] - z[k])) for k in range(n)] for j in range(n)]
        row, total = [sum(r) for r in d], sum(sum(r) for r in d)
        return [[0.0 if j == k else d[j][k] - row[j] / (n - 2) - row[k] / (n - 2) + total / ((n - 1) * (n - 2)) for k in range(n)] for j in range(n)]

    A, B = u_centred(x), u_centred(y)
    inner = lambda P, Q: sum(P[j][k] * Q[j][k] for j in range(n) for k in range(n) if j != k) / (n * (n - 3))  # noqa: E731
    return inner(A, B) / math.sqrt(inner(A, A) * inner(B, B))


def test_distance_correlation_v_statistic_by_hand_and_against_a_loop_reference():
    # x = (0, 1, 2), y = (0, 1, 0): dCov^2 = 8/81, dVar^2 = 40/81 and 16/81, so dCor^2 = 1 / sqrt(10).
    x, y = torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([[0.0], [1.0], [0.0]])
    assert distance_correlation(x, y).item() == pytest.approx(10 ** (-1 / 4), rel=1e-6)
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(6, 1, 2, 2, generator=gen, dtype=torch.float64)  # flattened to 4-D samples
    y = torch.rand(6, 3, generator=gen, dtype=torch.float64)
    assert distance_correlation(x, y).item() == pytest.approx(naive_dcor(x.flatten(1).numpy(), y.numpy()))
    assert distance_correlation(x, 2 * x + 1).item() == pytest.approx(1.0, abs=1e-5)
    assert distance_correlation(x, torch.zeros(6, 1)).item() == 0.0  # a constant has zero distance variance


def test_dcor_metric_is_the_bias_corrected_estimator_by_hand():
    # x = (0, 1, 2, 3), y = (0, 1, 0, 1). Row sums of |x_j - x_k|: 6, 4, 4, 6 (total 20), so off the diagonal
    # A~_jk = a_jk - (r_j + r_k) / 2 + 20 / 6: A~_01 = A~_23 = -2/3, the other four 1/3. B~_jk = b_jk - 2/3:
    # 1/3 where y differs, -2/3 where it agrees. Over the 12 ordered pairs, / (4 * 1): (A~ . B~) = -1/3,
    # (A~ . A~) = (B~ . B~) = 2/3, so R* = -1/2: reported as is, negative, with no square root.
    x, y = images([0.0], [1.0], [2.0], [3.0]), images([0.0], [1.0], [0.0], [1.0])
    assert metric("dcor", reconstructions=y, truth=x) == pytest.approx(-0.5, abs=1e-12)
    # x = (0, 1, 2, 3, 4), y = (0, 2, 1, 4, 3): (A~ . B~) = 8/15, (A~ . A~) = (B~ . B~) = 16/15, R* = 1/2.
    x, y = images(*[[v] for v in range(5)]), images([0.0], [2.0], [1.0], [4.0], [3.0])
    assert metric("dcor", reconstructions=y, truth=x) == pytest.approx(0.5, abs=1e-12)
    # The dcor package (0.7), u_distance_correlation_sqr, gives 0.82811286582928 for these 2-D samples.
    x2 = torch.tensor([[0.0, 0], [1, 0], [0, 1], [2, 2], [3, 1], [1, 3]], dtype=torch.float64)
    y2 = torch.tensor([[0.0], [1], [1], [3], [2], [5]], dtype=torch.float64)
    assert bias_corrected_distance_correlation(x2, y2).item() == pytest.approx(0.82811286582928, abs=1e-12)


def test_bias_corrected_dcor_against_a_loop_reference():
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(7, 1, 2, 2, generator=gen, dtype=torch.float64)
    y = torch.rand(7, 3, generator=gen, dtype=torch.float64)
    assert bias_corrected_distance_correlation(x, y).item() == pytest.approx(naive_bias_corrected_dcor(x.flatten(1).numpy(), y.numpy()), abs=1e-12)
    recon = x.flip(0) ** 2
    expected = naive_bias_corrected_dcor(x.flatten(1).numpy(), recon.flatten(1).numpy())
    assert metric("dcor", reconstructions=recon, truth=x) == pytest.approx(expected, abs=1e-12)
    digits = data.load("mnist5k").x[:16].double()
    noisy = (digits + 0.3 * torch.randn(digits.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    expected = naive_bias_corrected_dcor(digits.flatten(1).numpy(), noisy.flatten(1).numpy())
    assert metric("dcor", reconstructions=noisy, truth=digits) == pytest.approx(expected, abs=1e-12)


def test_dcor_is_one_for_affine_maps_and_near_zero_for_independent_samples():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(50, 1, 2, 2, generator=gen)
    assert metric("dcor", reconstructions=x, truth=x) == pytest.approx(1.0, abs=1e-6)
    assert metric("dcor", reconstructions=2 * x + 1, truth=x) == pytest.approx(1.0, abs=1e-6)
    for n in (64, 500):  # 784-d uniform against 784-d uniform: 0.018 and 0.005 here, the V-statistic says 0.99 and 0.93
        a, b = torch.rand(n, 1, 28, 28, generator=gen), torch.rand(n, 1, 28, 28, generator=gen)
        assert abs(metric("dcor", reconstructions=b, truth=a)) <= 0.05, n
    mnist = data.load("mnist5k").x.double()
    unrelated = metric("dcor", reconstructions=mnist[64:128], truth=mnist[:64])  # 0.0005; the V-statistic says 0.64
    assert abs(unrelated) <= 0.05
    assert metric("dcor", reconstructions=torch.zeros(50, 1, 2, 2), truth=x) == 0.0  # a constant has zero distance variance


def test_dcor_needs_four_pairs():
    x = torch.rand(3, 1, 2, 2, generator=torch.Generator().manual_seed(4))
    assert metric("dcor", reconstructions=x, truth=x) is None
    with pytest.raises(ModelinvError, match="at least 4"):
        bias_corrected_distance_correlation(x, x)


def test_dcor_observation_is_the_bias_corrected_dcor_of_inputs_and_observations():
    gen = torch.Generator().manual_seed(5)
    digits = data.load("mnist5k").x[:16].double()
    kernels = torch.randn(2, 1, 5, 5, generator=gen, dtype=torch.float64) / 5  # a random convolutional client, f1
    observed = torch.relu(nn.functional.conv2d(digits, kernels, stride=2)) + 0.1 * torch.randn(16, 2, 12, 12, generator=gen, dtype=torch.float64)
    value = metric("dcor_observation", reconstructions=digits.flip(0), truth=digits, observations=observed)  # reconstructions do not enter
    assert value == pytest.approx(bias_corrected_distance_correlation(digits, observed).item(), abs=1e-12)
    assert value == pytest.approx(naive_bias_corrected_dcor(digits.flatten(1).numpy(), observed.flatten(1).numpy()), abs=1e-12)
    assert value > 0.8  # 0.947: the features keep most of the inputs' geometry
    probabilities = torch.softmax(torch.randn(16, 10, generator=gen), 1)  # scores observations, (N, K)
    assert metric("dcor_observation", reconstructions=digits, truth=digits, observations=probabilities) == pytest.approx(
        bias_corrected_distance_correlation(digits, probabilities).item(), abs=1e-12
    )


def test_dcor_observation_is_near_zero_for_observations_independent_of_the_inputs():
    gen = torch.Generator().manual_seed(6)
    digits = data.load("mnist5k").x[:64]
    noise = torch.rand(64, 6, 12, 12, generator=gen)  # a defense that replaced the features by noise
    value = metric("dcor_observation", reconstructions=digits, truth=digits, observations=noise)
    assert abs(value) <= 0.1  # spread about 0.023 at n = 64
    assert metric("dcor_observation", reconstructions=digits, truth=digits, observations=torch.zeros(64, 10)) == 0.0


def test_dcor_observation_needs_truth_observations_and_four_pairs():
    x = torch.rand(3, 1, 2, 2, generator=torch.Generator().manual_seed(7))
    assert metric("dcor_observation", reconstructions=x, truth=x, observations=x.flatten(1)) is None
    with pytest.raises(ModelinvError, match="'dcor_observation' needs observations"):
        metric("dcor_observation", reconstructions=x, truth=x)
    with pytest.raises(ModelinvError, match="observations have shape \\(2, 4\\), expected \\(3, ...\\)"):
        MetricInputs(reconstructions=x, labels=torch.zeros(3, dtype=torch.int64), observations=x.flatten(1)[:2])


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
        "mse", "psnr", "ssim", "attack_acc_top1", "attack_acc_top5", "knn_dist", "knn_ratio", "diversity_ratio", "fid_eval", "dcor", "dcor_observation",
        "attr_acc", "attr_precision", "attr_recall", "attr_baseline_acc", "attr_ideal_acc", "attr_advantage",
        "bow_f1", "bow_precision", "bow_recall", "bow_sensitive_recall", "cand_top1", "cand_top5", "cand_advantage", "exposure", "exposure_inserted",
        "extraction", "extraction_inserted",
    }
    assert described["psnr"]["needs"] == ["truth"] and described["psnr"]["higher_is_better"] is True
    assert described["knn_dist"]["needs"] == ["evaluator", "private"] and not described["knn_dist"]["higher_is_better"]
    assert "top-5" in described["attack_acc_top5"]["summary"]
