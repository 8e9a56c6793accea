"""Stage 1 of KEDMI (Chen et al., "Knowledge-Enriched Distributional Model Inversion Attacks", ICCV 2021,
sec. 3.1): an inversion-specific GAN whose discriminator also learns the target's knowledge.

The discriminator has K logits l(x) (K = the target's classes). It is a semi-supervised GAN
discriminator (Salimans et al., NeurIPS 2016): its real/fake score is D(x) = sigmoid(logsumexp l(x)),
and it classifies the public images x by the target's soft labels T(x):

    L_D = L_class + L_gan
    L_class = -E_x[ sum_k softmax(T(x))_k log softmax(l(x))_k ]
    L_gan   = 1/2 (E_x[softplus(-lse l(x))] + E_z[softplus(lse l(G(z)))])   (= -log D(x) - log(1 - D(G(z))))

The generator matches the discriminator's mean features f (its last hidden layer) on real and fake
batches and makes the discriminator's class prediction on its samples confident:

    L_G = ||E_x f(x) - E_z f(G(z))||^2 + entropy_weight * E_z[H(softmax(l(G(z))))]

Departures from the reference code: the feature distance is the paper's squared L2 averaged over
features (the code uses the mean absolute difference), the entropy is averaged over the batch with
weight 1e-2 (the code sums it with weight 1e-4, i.e. 6.4e-3 on the mean of its 64 images), and one public batch serves as both the labelled and the unlabelled
batch (the code draws them from two loaders over the same data). The target's soft labels on the
public data are computed once, through the white-box oracle (counted as evaluations).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from modelinv.data.types import Dataset
from modelinv.gans import Draws, GANConfig, cached_gan, charge_training, train_gan
from modelinv.models import build_model
from modelinv.oracle import WhiteBox
from modelinv.seeding import seeded


class KEDMIGANConfig(GANConfig):
    entropy_weight: float = Field(1e-2, ge=0, description="weight of the entropy of the discriminator's class prediction on generated images")


def realness(logits: torch.Tensor) -> torch.Tensor:
    """The semi-supervised GAN's real/fake logit: logsumexp of the K class logits."""
    return torch.logsumexp(logits, dim=1)


@torch.no_grad()
def soft_labels(target: WhiteBox, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """softmax(T(x)) for the public images, through the white-box oracle (on the target's device)."""
    return torch.cat([target(x[i : i + batch_size]).softmax(1) for i in range(0, len(x), batch_size)])


def train_kedmi_gan(public: Dataset, labels: torch.Tensor, config: KEDMIGANConfig, seed: int) -> tuple[dict[str, nn.Module], dict]:
    """Train G and D on the public images and the target's soft `labels` with L_D and L_G (module docstring), on
    the device of `labels` (built on the CPU)."""
    c = config
    device = labels.device
    shape, k = public.input_shape, labels.shape[1]

    def critic_loss(d: nn.Module, draws: Draws):
        fake, _ = draws.fake()
        real, soft = draws.real()
        logits, logits_fake = d(real), d(fake)
        classify = -(soft * logits.log_softmax(1)).sum(1).mean()
        adversarial = 0.5 * (F.softplus(-realness(logits)).mean() + F.softplus(realness(logits_fake)).mean())
        agreement = (logits.argmax(1) == soft.argmax(1)).float().mean()
        return classify + adversarial, {"loss_class": classify.detach(), "loss_gan": adversarial.detach(), "d_target_agreement": agreement}

    def generator_loss(g: nn.Module, d: nn.Module, draws: Draws):
        z, _ = draws.latent()
        real, _ = draws.real()
        features = d.features(g(z))
        with torch.no_grad():
            reference = d.features(real).mean(0)
        matching = (features.mean(0) - reference).pow(2).mean()
        logits = d.head(features)
        entropy = -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()
        return matching + c.entropy_weight * entropy, {"loss_feature_matching": matching.detach(), "entropy_fake": entropy.detach()}

    with seeded(seed):
        generator = build_model("dcgan-generator", shape, 0, latent_dim=c.latent_dim, width=c.width).to(device)
        discriminator = build_model("dcgan-discriminator", shape, 0, outputs=k, width=c.width).to(device)
        metrics = train_gan(generator, discriminator, (public.x, labels), c, seed, critic_loss, generator_loss, "training kedmi GAN")
    return {"generator": generator, "discriminator": discriminator}, metrics


def kedmi_gan(target: WhiteBox, public: Dataset, config: KEDMIGANConfig, seed: int) -> tuple[nn.Module, nn.Module, dict]:
    """The KEDMI generator and discriminator for `target` (its whole model) and the attacker's `public` data: cached or trained.

    The cache key includes the target's weight digest, since the GAN learns from the target's soft labels.
    """

    def produce():
        before = target.queries
        labels = soft_labels(target, public.x)
        modules, metrics = train_kedmi_gan(public, labels, config, seed)
        return modules, {**metrics, "target_evaluations": target.queries - before}

    modules, meta = cached_gan("kedmi-gan", public, target.model, config, seed, produce, guided=True, device=target.device)
    charge_training(target, meta)
    return modules["generator"], modules["discriminator"], meta
