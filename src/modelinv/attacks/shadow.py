"""Query-free attack (He, Zhang & Lee, ACSAC 2019, sec. 6): a shadow client model, then rMLE on it.

The attacker knows the server part f2 (and the client's architecture) but cannot query the client.
It trains a shadow f1' on its own labelled data so that f2(f1'(x)) classifies correctly, with f2
frozen, then inverts the observed features with rMLE through f1' instead of the unknown f1.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from pydantic import Field

from modelinv.attacks.base import Attack, Reconstruction, Targets
from modelinv.attacks.feature_inversion import RMLEParams, invert_features, schedule
from modelinv.attacks.registry import ATTACKS
from modelinv.data.types import Dataset
from modelinv.devices import device_of
from modelinv.models.layered import ClientPart, LayeredNet
from modelinv.models.trainer import train_epochs
from modelinv.oracle import ThreatModel
from modelinv.seeding import seeded


def train_shadow_client(
    model: LayeredNet, layer: str, data: Dataset, epochs: int, lr: float, batch_size: int, gen: torch.Generator
) -> LayeredNet:
    """Copy the architecture, re-initialise the client stages, train them through the frozen server stages
    (inside `seeded`, from one seed drawn from `gen`), on the device of `model`. The client stages are
    re-initialised on the CPU, so the same seed gives the same shadow on every device."""
    device = device_of(model)
    shadow = copy.deepcopy(model).cpu()
    client = shadow.client_stages(layer)
    with seeded(gen):
        for name, stage in shadow.stages.items():
            for module in stage.modules():
                if name in client and hasattr(module, "reset_parameters"):
                    module.reset_parameters()
            stage.requires_grad_(name in client)
        shadow.to(device)
        shadow.train()
        for name in shadow.cut_layers:  # the server part stays in inference mode (frozen batch-norm statistics)
            if name not in client:
                shadow.stages[name].eval()
        optimiser = torch.optim.Adam([p for p in shadow.parameters() if p.requires_grad], lr=lr)

        def loss(idx: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(shadow(data.x[idx].to(device)), data.y[idx].to(device))

        for _ in train_epochs(loss, optimiser, len(data), epochs, batch_size, gen, desc="shadow client"):
            pass
    shadow.eval().requires_grad_(False)
    return shadow


class ShadowParams(RMLEParams):
    """rMLE's parameters plus the shadow client's training."""

    epochs: int = Field(20, ge=1, description="training epochs of the shadow client")
    train_lr: float = Field(1e-3, gt=0, description="Adam step size for the shadow client")
    batch_size: int = Field(64, ge=1)


@ATTACKS.register("shadow")
class ShadowModel(Attack):
    """Query-free attack (He et al., ACSAC 2019): rMLE through a shadow client trained against the known server."""

    observes = frozenset({"features"})
    white_box = frozenset({"server"})
    Params = ShadowParams

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        p = self.params
        layer = threat.observer.layer
        known = threat.white_box.model
        shadow = train_shadow_client(known, layer, attacker_data, p.epochs, p.train_lr, p.batch_size, gen)
        steps = schedule(shadow, layer, p)
        shape = tuple(known.spec["input_shape"])
        images = invert_features(ClientPart(shadow, layer), targets.observations.to(threat.device), shape, **steps, desc="rMLE on shadow", adam_eps=self.params.adam_eps, amsgrad=self.params.amsgrad)
        return Reconstruction(images, steps)
