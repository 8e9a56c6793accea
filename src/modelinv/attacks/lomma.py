"""LOMMA, the plug-in of Nguyen et al., "Re-thinking Model Inversion Attacks Against Deep Neural
Networks", CVPR 2023, for the white-box GAN attacks (`gmi`, `kedmi`, `plg-mi`, option `lomma: true`).

It replaces the attack's identity loss by two changes:

- Logit maximisation (sec. 4, Eq. 5): instead of the cross-entropy, maximise the class logit, with a
  penalty keeping the target's penultimate features phi near p_reg, their mean over the attacker's
  public images (the reference's estimate):

      L_logit(x, y) = -l_y(x) + lambda_reg * mean_j (phi_j(x) - p_reg_j)^2

- Model augmentation (sec. 5): surrogates S_1..S_N distilled from the target on the public data
  (KL(softmax T(x) || softmax S_i(x)), the target's soft labels computed once through the white-box
  oracle), and the logit term averaged over the ensemble:

      L_id(x, y) = 1 / (N + 1) * (-l^T_y(x) - sum_i l^{S_i}_y(x)) + lambda_reg * mean_j (phi_j(x) - p_reg_j)^2

  as in the reference, where the feature penalty applies to the target only.

Defaults follow the reference (lambda_reg 1, three surrogates); departures for 28x28 MNIST on CPU: the
surrogates are modelinv's `cnn-split`, `mlp` and `lenet` (the reference uses EfficientNet-B0..B2),
distilled for 20 epochs with Adam (lr 1e-3, batch 64) on the attacker's public digits. Surrogates are
cached like every model, keyed by the public data, their training settings, the seed and the target's
weight digest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelinv.data.types import Dataset
from modelinv.gans.kedmi import soft_labels
from modelinv.models import build_model
from modelinv.models.layered import LayeredNet
from modelinv.models.registry import MODELS
from modelinv.models.store import ModelRequest, cached, module_digest
from modelinv.models.trainer import train_epochs
from modelinv.oracle import WhiteBox
from modelinv.seeding import seeded


class LOMMAParams(BaseModel):
    """The LOMMA option of a white-box GAN attack's parameters."""

    model_config = ConfigDict(extra="forbid")

    lomma: bool = Field(False, description="LOMMA (Nguyen et al., CVPR 2023): logit loss and an ensemble of distilled surrogates as the identity loss")
    lomma_surrogates: list[str] = Field(["cnn-split", "mlp", "lenet"], description="architectures distilled from the target on public data (LOMMA model augmentation)")
    lomma_reg: float = Field(1.0, ge=0, description="lambda_reg: weight of the penultimate-feature penalty of the LOMMA logit loss")
    lomma_epochs: int = Field(20, ge=1, description="distillation epochs of each LOMMA surrogate")

    @field_validator("lomma_surrogates")
    @classmethod
    def _registered(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            raise ValueError(f"unknown architecture '{unknown[0]}' (known: {', '.join(MODELS.names())})")
        return names


DISTILL_LR, DISTILL_BATCH = 1e-3, 64


def surrogate_models(params: LOMMAParams) -> dict[str, bool]:
    """The surrogates LOMMA distils (none without `lomma`), named as `Attack.trained_models` names models: by
    architecture and epochs, so GMI, KEDMI and PLG-MI with LOMMA share them; each learns from the target."""
    return {f"lomma-surrogate:{arch}:{params.lomma_epochs}": True for arch in params.lomma_surrogates} if params.lomma else {}


def distill(arch: str, public: Dataset, soft: torch.Tensor, epochs: int, seed: int) -> tuple[LayeredNet, dict]:
    """Train `arch` on the public images to match the target's soft labels (KL divergence), Adam with a cosine
    schedule; built (on the CPU) and trained inside `seeded(seed)`, on the device of `soft`."""
    gen = torch.Generator().manual_seed(seed)
    device = soft.device
    x = public.x.to(device)
    with seeded(seed):
        model = build_model(arch, public.input_shape, soft.shape[1]).to(device)
        optimiser = torch.optim.Adam(model.parameters(), DISTILL_LR)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs * -(-len(public) // DISTILL_BATCH))

        def loss(batch: torch.Tensor) -> torch.Tensor:
            return F.kl_div(model(x[batch]).log_softmax(1), soft[batch], reduction="batchmean")

        model.train()
        for _ in train_epochs(loss, optimiser, len(public), epochs, DISTILL_BATCH, gen, after_step=schedule.step, desc=f"distilling LOMMA surrogate {arch}"):
            pass
    model.eval()
    with torch.no_grad():
        agreement = (model(x).argmax(1) == soft.argmax(1)).float().mean().item()
    return model, {"target_agreement_public": agreement}


class LOMMA:
    """The target (white-box), its distilled surrogates and p_reg: the LOMMA identity loss L_id (module docstring)."""

    def __init__(self, target: WhiteBox, public: Dataset, params: LOMMAParams, seed: int):
        self.target, self.reg = target, params.lomma_reg
        self.layer = target.model.embedding_layer
        digest = module_digest(target.model)
        soft = soft_labels(target, public.x)  # asked even when the surrogates are cached, so the query count is the attack's true cost

        self.surrogates, self.meta = [], {}
        for arch in params.lomma_surrogates:
            request = ModelRequest(
                role="lomma-surrogate",
                arch=arch,
                input_shape=public.input_shape,
                num_classes=int(target.model.spec["num_classes"]),
                data_digest=public.digest(),
                seed=seed,
                train={"epochs": params.lomma_epochs, "lr": DISTILL_LR, "batch_size": DISTILL_BATCH, "target": digest},
                device=str(target.device),
            )

            def produce(arch: str = arch) -> tuple[dict, dict]:
                model, metrics = distill(arch, public, soft, params.lomma_epochs, seed)
                return {"model": model}, metrics

            with seeded(None):  # the cache seeds the global random state before training: keep the caller's
                modules, meta = cached(request, produce)
            modules["model"].requires_grad_(False)
            self.surrogates.append(modules["model"])
            self.meta[arch] = {"cached": meta["cached"], "path": meta["path"], **meta["metrics"]}
        with torch.no_grad():
            self.p_reg = torch.cat([target.features(public.x[i : i + 512].to(target.device), self.layer).flatten(1) for i in range(0, len(public), 512)]).mean(0)

    def __call__(self, images: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L_id per image: the ensemble's mean negative class logit plus the target's feature penalty."""
        features = self.target.features(images, self.layer)
        logits = [self.target.model.forward_from(features, self.layer)] + [s(images) for s in self.surrogates]
        logit = torch.stack([z.gather(1, y[:, None]).squeeze(1) for z in logits]).mean(0)
        return -logit + self.reg * (features.flatten(1) - self.p_reg).pow(2).mean(1)
