"""What the black-box and label-only generative attacks (mirror-bb, brep-mi, rlb-mi) share.

- The prior: GMI's WGAN-GP generator (`modelinv.gans.wgan_gp`), trained on the attacker's public data
  without the target and cached; the same attack seed loads the same GAN as `gmi`.
- The target is reached only through the observation oracle, `threat.observer`, as images go in and
  probabilities or labels come out (under `torch.no_grad`), so a served model behind HTTP works unchanged.
- A query budget stops the search where it stands: `until_budget` records the oracle's message in the
  result's `meta["stopped"]`, warns with it, and the attack returns the best result found so far.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError, QueryBudgetExceeded
from modelinv.gans import derive_seed, gan_config
from modelinv.gans.wgan_gp import WGANGPConfig, wgan_gp


def public_prior(attacker_data: Dataset, params: WGANGPConfig, gen: torch.Generator) -> tuple[nn.Module, dict]:
    """The frozen GMI generator for the attacker's public data (cached or trained) and its metadata."""
    generator, _, meta = wgan_gp(attacker_data, None, gan_config(WGANGPConfig, params), derive_seed(gen))
    return generator, meta


@torch.no_grad()
def ask(observer: Any, generator: nn.Module, z: torch.Tensor, want: str) -> torch.Tensor:
    """The oracle's answer for the images G(z) as `want` ("probs" or "label"), derived from a richer answer
    (logits -> probabilities -> top-1 label) when the oracle gives more; every image counts as a query."""
    out = observer(generator(z))
    if observer.kind == want:
        return out
    return out.argmax(1) if want == "label" else out.softmax(1)


def check_classes(attack: str, classes: torch.Tensor, num_classes: int) -> None:
    """Refuse classes the target's answers do not have (known to the attacker once it sees a probability vector)."""
    if int(classes.max()) >= num_classes:
        raise ModelinvError(f"attack '{attack}': targets.classes asks for class {int(classes.max())}, the target has {num_classes} classes")


@contextmanager
def until_budget(attack: str, meta: dict[str, Any]) -> Iterator[None]:
    """Run the search; when the oracle's query budget runs out, record and warn, and carry on with the best so far."""
    try:
        yield
    except QueryBudgetExceeded as err:
        message = f"attack '{attack}' stopped early, {err}; returning the best result found so far"
        meta["stopped"] = message
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def rank_in_class(y: torch.Tensor) -> torch.Tensor:
    """For each requested class index in `y`, how many earlier entries ask for the same class (0, 1, 2, ...)."""
    same = y[:, None] == y[None, :]
    return torch.tril(same, diagonal=-1).sum(1)
