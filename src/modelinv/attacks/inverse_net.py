"""Inverse network: learn a decoder from observations back to inputs (He et al., ACSAC 2019, sec. 5).

The attacker queries the black-box oracle with its own data X_a, obtains O_a = oracle(X_a), and trains
g to minimise ||g(O_a) - X_a||^2; private observations are then inverted as g(o). The same attacker,
trained on auxiliary data such as EMNIST letters, is the classic split-NN demonstration. Observations
may be feature maps (decoded by transposed convolutions) or vectors (split features of an MLP,
probability vectors; decoded by an MLP). A trained decoder goes to the model cache, keyed by exactly what
it was trained on (the observations and images, the parameters, the random state, the thread count): the
same experiment run again decodes with it instead of training it again; the oracle is still queried, so the
query count is the attack's true cost.
"""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from modelinv.attacks.base import Attack, AttackParams, Reconstruction, Targets
from modelinv.attacks.registry import ATTACKS
from modelinv.data.types import Dataset
from modelinv.models.store import ModelRequest, cached
from modelinv.models.trainer import train_epochs
from modelinv.oracle import ThreatModel
from modelinv.seeding import seeded


class MapDecoder(nn.Module):
    """(c, h, w) feature map -> (C, H, W) image.

    Batch-normalised input and a 3x3 convolution, stride-2 transposed convolutions (halving the
    channels each time) up to about the image size, then one convolution whose kernel makes the size
    exact (transposed to grow, plain to shrink), to the image channels. A LeNet conv1 map (8x24x24)
    is decoded by a 5x5 transposed convolution, the exact shape of the inverse of conv1.
    """

    def __init__(self, obs_shape: tuple[int, ...], image_shape: tuple[int, ...], width: int):
        super().__init__()
        c, h, w = obs_shape
        ups = max(0, round(math.log2(image_shape[1] / h)))
        layers: list[nn.Module] = [nn.BatchNorm2d(c), nn.Conv2d(c, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU()]
        for _ in range(ups):
            layers += [nn.ConvTranspose2d(width, max(8, width // 2), 4, 2, 1), nn.BatchNorm2d(max(8, width // 2)), nn.ReLU()]
            width, h, w = max(8, width // 2), 2 * h, 2 * w
        grow = (image_shape[1] - h, image_shape[2] - w)
        if min(grow) >= 0:
            layers.append(nn.ConvTranspose2d(width, image_shape[0], (grow[0] + 1, grow[1] + 1)))
        elif max(grow) <= 0:
            layers.append(nn.Conv2d(width, image_shape[0], (1 - grow[0], 1 - grow[1])))
        else:
            raise ValueError(f"cannot decode a {obs_shape} map to {image_shape} images")
        self.body = nn.Sequential(*layers)

    def forward(self, o: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(o))


class VectorDecoder(nn.Module):
    """Vector observation -> image: batch-normalised input, a two-hidden-layer MLP."""

    def __init__(self, obs_dim: int, image_shape: tuple[int, ...], width: int):
        super().__init__()
        self.shape = tuple(image_shape)
        self.body = nn.Sequential(
            nn.BatchNorm1d(obs_dim),
            nn.Linear(obs_dim, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, math.prod(image_shape)),
        )

    def forward(self, o: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(o.flatten(1))).view(-1, *self.shape)


DECODER = "inverse-net-decoder"
"""The cache's name for a trained decoder (models/<DECODER>-<key>/)."""


def make_decoder(obs_shape: tuple[int, ...], image_shape: tuple[int, ...], conv_width: int, mlp_width: int) -> nn.Module:
    """The decoder for observations of `obs_shape` (a map: MapDecoder, a vector: VectorDecoder), with the `spec`
    the model cache stores and rebuilds it from (`rebuild_decoder`)."""
    decoder = MapDecoder(obs_shape, image_shape, conv_width) if len(obs_shape) == 3 else VectorDecoder(math.prod(obs_shape), image_shape, mlp_width)
    decoder.spec = {"arch": DECODER, "args": {"image_shape": list(image_shape), "conv_width": conv_width, "mlp_width": mlp_width},
                    "input_shape": list(obs_shape), "num_classes": 0}
    return decoder


def rebuild_decoder(config: dict) -> nn.Module:
    """A decoder of the shape a cached checkpoint's config describes (its weights are loaded by the cache)."""
    a = config["args"]
    return make_decoder(tuple(config["input_shape"]), tuple(a["image_shape"]), a["conv_width"], a["mlp_width"])


def tensors_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 of the tensors' shapes and values: keys a decoder by exactly what it is trained on."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class InverseNetParams(AttackParams):
    epochs: int = Field(40, ge=1, description="passes over the attacker's query data")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0, description="Adam step size")
    conv_width: int = Field(64, ge=8, description="channels of the first decoder convolution")
    mlp_width: int = Field(1024, ge=1, description="hidden units of the vector decoder")


@ATTACKS.register("inverse-net")
class InverseNet(Attack):
    """Inverse network (He et al., ACSAC 2019): a decoder trained on (oracle(x), x) pairs from the attacker's data."""

    observes = frozenset({"features", "logits", "probs"})
    queries = True
    learns_from_target = True  # its decoder is trained on the target's answers
    Params = InverseNetParams

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        """Query the oracle with the attacker's data, train the decoder on the pairs (or load the decoder trained on
        exactly these pairs, with these parameters and this random state, from the model cache), decode the targets."""
        p = self.params
        device = threat.device
        x_a = attacker_data.x.to(device)
        o_a = threat.observer(x_a).float().to(device)  # asked even when the decoder is cached: the queries are the attack's cost
        request = ModelRequest(
            role="inverse-net-decoder", arch=DECODER, input_shape=tuple(o_a.shape[1:]), num_classes=0, data_digest=tensors_digest(o_a, x_a),
            seed=gen.initial_seed(), args={"image_shape": list(x_a.shape[1:]), "conv_width": p.conv_width, "mlp_width": p.mlp_width},
            train={"epochs": p.epochs, "batch_size": p.batch_size, "lr": p.lr, "generator_state": tensors_digest(gen.get_state())}, device=str(device),
        )

        def produce() -> tuple[dict[str, nn.Module], dict]:
            with seeded(gen):
                decoder = make_decoder(tuple(o_a.shape[1:]), tuple(x_a.shape[1:]), p.conv_width, p.mlp_width).to(device)  # initialised on the CPU
                optimiser = torch.optim.Adam(decoder.parameters(), lr=p.lr)

                def loss(idx: torch.Tensor) -> torch.Tensor:
                    return F.mse_loss(decoder(o_a[idx]), x_a[idx])

                for train_loss in train_epochs(loss, optimiser, len(x_a), p.epochs, p.batch_size, gen, desc="inverse network"):
                    pass
            return {"decoder": decoder}, {"train_loss": train_loss}

        with seeded(None):  # the cache seeds the global random state before training: keep the caller's
            modules, meta = cached(request, produce, rebuild=rebuild_decoder)
        decoder = modules["decoder"].eval()
        with torch.no_grad():
            images = torch.cat([decoder(o) for o in targets.observations.float().to(device).split(512)])
        return Reconstruction(images, {"decoder": type(decoder).__name__, "train_loss": meta["metrics"]["train_loss"],
                                       "decoder_cached": meta["cached"], "decoder_path": meta["path"]})
