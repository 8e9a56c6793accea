"""NoPeek (Vepakomma et al., "NoPeek: Information leakage reduction to share activations in distributed
deep learning", ICDMW 2020; used as a defense by Titcombe et al. 2021): train the target on

    L = CE(f2(f1(x)), y) + w * dCor(x, f1(x))

per batch, decorrelating the split-layer features from the raw inputs. dCor is the vectorised sample
distance correlation of modelinv.stats."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from modelinv.defenses.base import DefenseParams, TrainingDefense
from modelinv.defenses.registry import DEFENSES
from modelinv.models.layered import LayeredNet
from modelinv.stats import distance_correlation


class NoPeekParams(DefenseParams):
    weight: float = Field(0.5, ge=0, description="w, the weight of dCor(x, f1(x)) (Titcombe et al.: 0.1 to 1.0)")


@DEFENSES.register("nopeek")
class NoPeek(TrainingDefense):
    """Distance-correlation penalty between inputs and split-layer features (Vepakomma et al. 2020)."""

    Params = NoPeekParams
    needs_layer = True

    def loss(self, model: LayeredNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        layer = self.check_layer()
        h = model.features(x, layer)
        return F.cross_entropy(model.forward_from(h, layer), y) + self.params.weight * distance_correlation(x, h)
