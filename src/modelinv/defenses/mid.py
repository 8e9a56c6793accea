"""MID: mutual-information regularisation (Wang, Yang, Yu, Huang & Xu, "Improving Robustness to Model
Inversion Attacks via Mutual Information Regularization", AAAI 2021).

MID penalises I(X; Z) of the features Z the classifier predicts from, through the variational
information bottleneck bound (Alemi et al., ICLR 2017):

    L = CE(f2(z), y) + beta * KL(N(mu, diag std^2) || N(0, I)),   z = mu + std * eps,  eps ~ N(0, I)

Here mu is the target's own activation at the bottleneck layer (its embedding layer by default) and
std = softplus(W mu + b - 5) comes from a linear head used only while training; the released model
predicts from mu (the VIB's mean at test time), so its architecture is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from modelinv.defenses.base import DefenseParams, TrainingDefense
from modelinv.defenses.registry import DEFENSES
from modelinv.devices import device_of
from modelinv.models.layered import LayeredNet
from modelinv.models.trainer import TrainConfig


class MIDParams(DefenseParams):
    beta: float = Field(0.01, ge=0, description="weight of the KL bound on I(X; Z) (Wang et al.: 0.001 to 0.1)")
    bottleneck: str | None = Field(None, description="layer whose output is the bottleneck mean; default: the model's embedding layer")


@DEFENSES.register("mid")
class MID(TrainingDefense):
    """MID (Wang et al., AAAI 2021): a variational information bottleneck on the features, weight beta."""

    Params = MIDParams

    def setup(self, model: LayeredNet, optimiser: torch.optim.Optimizer, train_size: int, config: TrainConfig) -> torch.optim.Optimizer:
        self.at = model.check_layer(self.params.bottleneck or model.embedding_layer)
        with torch.no_grad():
            width = model.features(torch.zeros(1, *model.spec["input_shape"], device=device_of(model)), self.at)[0].numel()
        self.std_head = nn.Linear(width, width).to(device_of(model))  # initialised on the CPU
        optimiser.add_param_group({"params": self.std_head.parameters()})
        return optimiser

    def loss(self, model: LayeredNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mu = model.features(x, self.at)
        std = F.softplus(self.std_head(mu.flatten(1)) - 5.0).view_as(mu)
        z = mu + std * torch.randn(std.shape, dtype=std.dtype).to(std.device)  # drawn on the CPU (as randn_like there)
        kl = 0.5 * (mu.pow(2) + std.pow(2) - 2 * std.clamp_min(1e-8).log() - 1).flatten(1).sum(1).mean()
        return F.cross_entropy(model.forward_from(z, self.at), y) + self.params.beta * kl
