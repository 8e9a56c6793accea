"""DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016, Algorithm 1) through Opacus.

Each step samples a Poisson batch (every example independently with rate q = 1/steps per epoch),
clips each example's gradient to norm C, adds N(0, sigma^2 C^2 I) to their sum and takes the
optimiser's step. The RDP accountant (Mironov, CSF 2017; Mironov et al. 2019 for the subsampled
Gaussian) turns sigma, q and the steps taken into (epsilon, delta)-DP of the released weights. The
config gives sigma (`noise_multiplier`) or a `target_epsilon`, from which Opacus finds sigma for the
configured epochs. Models with batch normalisation cannot be trained this way (per-example gradients).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from pydantic import Field, model_validator

from modelinv.defenses.base import DefenseParams, TrainingDefense
from modelinv.defenses.registry import DEFENSES
from modelinv.errors import ModelinvError
from modelinv.models.trainer import TrainConfig


class DPSGDParams(DefenseParams):
    noise_multiplier: float | None = Field(None, gt=0, description="sigma, noise std over the clipping norm; or set target_epsilon")
    target_epsilon: float | None = Field(None, gt=0, description="epsilon to reach after the configured epochs; or set noise_multiplier")
    delta: float = Field(1e-5, gt=0, lt=1, description="delta of the (epsilon, delta)-DP guarantee")
    max_grad_norm: float = Field(1.0, gt=0, description="C, the per-example gradient clipping norm")

    @model_validator(mode="after")
    def _one_strength(self) -> "DPSGDParams":
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ValueError("set exactly one of noise_multiplier and target_epsilon")
        return self


@DEFENSES.register("dp-sgd")
class DPSGD(TrainingDefense):
    """DP-SGD (Abadi et al., CCS 2016) with Opacus: per-example clipping, Gaussian noise, RDP accounting of epsilon."""

    Params = DPSGDParams
    reports = ("epsilon", "delta", "noise_multiplier")

    def setup(self, model: torch.nn.Module, optimiser: torch.optim.Optimizer, train_size: int, config: TrainConfig) -> torch.optim.Optimizer:
        from opacus import GradSampleModule
        from opacus.accountants import RDPAccountant
        from opacus.accountants.utils import get_noise_multiplier
        from opacus.optimizers import DPOptimizer
        from opacus.validators import ModuleValidator

        # Opacus's per-example gradient hooks fire on the first layer, whose input needs no gradient: harmless.
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        problems = ModuleValidator.validate(model, strict=False)
        if problems:
            raise ModelinvError(f"defense 'dp-sgd' cannot train model '{getattr(model, 'arch', type(model).__name__)}': {problems[0]}")
        p = self.params
        self.steps_per_epoch = math.ceil(train_size / config.batch_size)
        self.sample_rate = 1.0 / self.steps_per_epoch  # as Opacus's DPDataLoader
        self.sigma = p.noise_multiplier or get_noise_multiplier(
            target_epsilon=p.target_epsilon, target_delta=p.delta, sample_rate=self.sample_rate, epochs=config.epochs, accountant="rdp"
        )
        self.grad_sample = GradSampleModule(model)
        self.accountant = RDPAccountant()
        dp = DPOptimizer(optimiser, noise_multiplier=self.sigma, max_grad_norm=p.max_grad_norm, expected_batch_size=int(train_size * self.sample_rate))
        dp.attach_step_hook(self.accountant.get_optimizer_hook_fn(sample_rate=self.sample_rate))
        return dp

    def batches(self, n: int, batch_size: int, gen: torch.Generator):
        """Poisson sampling: each of the epoch's steps takes every example independently with rate q."""
        for _ in range(self.steps_per_epoch):
            yield (torch.rand(n, generator=gen) < self.sample_rate).nonzero().squeeze(1)  # cpu: batch indices, drawn from the CPU generator

    def finish(self, model: torch.nn.Module) -> dict[str, Any]:
        self.grad_sample.cleanup()
        return {
            "epsilon": self.accountant.get_epsilon(self.params.delta),
            "delta": self.params.delta,
            "noise_multiplier": self.sigma,
            "dp_steps": sum(steps for _, _, steps in self.accountant.history),
        }
