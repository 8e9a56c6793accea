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
from modelinv.attacks.registry import ATTACKS
from modelinv.attacks.rmle import RMLEParams, invert_features, schedule
from modelinv.data.types import Dataset
from modelinv.models.layered import ClientPart, LayeredNet
from modelinv.oracle import ThreatModel
from modelinv.progress import progress_bar


def train_shadow_client(
    model: LayeredNet, layer: str, data: Dataset, epochs: int, lr: float, batch_size: int, gen: torch.Generator
) -> LayeredNet:
    """Copy the architecture, re-initialise the client stages, train them through the frozen server stages."""
    shadow = copy.deepcopy(model)
    client = shadow.client_stages(layer)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    for name, stage in shadow.stages.items():
        for module in stage.modules():
            if name in client and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        stage.requires_grad_(name in client)
    shadow.train()
    for name in shadow.cut_layers:  # the server part stays in inference mode (frozen batch-norm statistics)
        if name not in client:
            shadow.stages[name].eval()
    params = [p for p in shadow.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=lr)
    with progress_bar("shadow client", epochs) as advance:
        for _ in range(epochs):
            perm = torch.randperm(len(data), generator=gen)
            for i in range(0, len(data), batch_size):
                idx = perm[i : i + batch_size]
                loss = F.cross_entropy(shadow(data.x[idx]), data.y[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            advance(loss=loss.item())
    shadow.eval().requires_grad_(False)
    return shadow


class ShadowParams(RMLEParams):
    """rMLE's parameters plus the shadow client's training."""

    epochs: int = Field(20, ge=1, description="training epochs of the shadow client")
    train_lr: float = Field(1e-3, gt=0, description="Adam step size for the shadow client")
    batch_size: int = Field(64, ge=1)


@ATTACKS.register("shadow", threat="white-box server + features, no queries")
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
        images = invert_features(ClientPart(shadow, layer), targets.observations, shape, **steps, desc="rMLE on shadow")
        return Reconstruction(images, steps)
