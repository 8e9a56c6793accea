"""Oracles: exactly what an attacker may touch, with query counting and an optional budget.

- `WhiteBox(model, part)`: weights and gradients of the whole model, or of the client part f1 or
  server part f2 of a split network.
- `Features(model, layer)`: the split-layer activation f1(x) (split learning, collaborative inference).
- `Scores(model, kind)`: the model's output as logits, probabilities, or the top-1 label only.

What each may return is an `Observation` (modelinv.observation).

An output defense (modelinv.defenses) given to `Features` or `Scores` perturbs every observation they
return, so the attacker's queries and the victim traffic it intercepts both carry the defended tensor.

A `ThreatModel` bundles the observation channel with optional white-box knowledge; attacks declare
what they need and refuse a weaker threat model (as ART's estimator requirements do).

Devices: a local oracle evaluates its model where the model lives; inputs are moved there and answers
come back on that device. `ThreatModel.device` is where an attack should put its own tensors and networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from modelinv.defenses.base import OutputDefense
from modelinv.devices import device_of
from modelinv.errors import AccessDenied, ModelinvError, QueryBudgetExceeded
from modelinv.models.layered import ClientPart, LayeredNet, ServerPart
from modelinv.observation import SCORES, Observation

WHITE_BOX_PARTS = ("full", "client", "server")


class Oracle:
    """Counts the inputs it answers for and stops at `budget`."""

    provides: frozenset[str] = frozenset()
    model: nn.Module | None = None

    def __init__(self, budget: int | None = None):
        self.budget = budget
        self.queries = 0

    @property
    def device(self) -> torch.device:
        """Where the oracle's model evaluates and its answers live (the CPU for a model without tensors)."""
        return device_of(self.model)

    def charge(self, n: int) -> None:
        if self.budget is not None and self.queries + n > self.budget:
            raise QueryBudgetExceeded(
                f"query budget exhausted: {self.budget} allowed, {self.queries} used, {n} more requested"
            )
        self.queries += n


class WhiteBox(Oracle):
    """Differentiable access to `part` of the model ("full", "client" = f1, "server" = f2)."""

    def __init__(self, model: LayeredNet, part: str = "full", layer: str | None = None, budget: int | None = None):
        super().__init__(budget)
        if part not in WHITE_BOX_PARTS:
            raise AccessDenied(f"white_box must be one of {', '.join(WHITE_BOX_PARTS)}, not '{part}'")
        if part != "full" and layer is None:
            raise AccessDenied(f"white-box access to the {part} part needs a cut layer")
        self.model, self.part, self.layer = model, part, layer
        self.provides = frozenset({f"white-box:{part}"})
        self.module: nn.Module = {"full": lambda: model, "client": lambda: ClientPart(model, layer), "server": lambda: ServerPart(model, layer)}[part]()
        for p in model.parameters():
            p.requires_grad_(False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable output of the known part; each input counts as one query."""
        self.charge(x.shape[0])
        return self.module(x.to(self.device))

    def features(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """Differentiable f1(x) at `layer`, allowed when the known part covers the layers up to it."""
        known = self.model.cut_layers if self.part == "full" else self.model.client_stages(self.layer) if self.part == "client" else []
        if layer not in known:
            raise AccessDenied(f"white-box access to the {self.part} part does not cover layer '{layer}'")
        self.charge(x.shape[0])
        return self.model.features(x.to(self.device), layer)


class _Observer(Oracle):
    """An oracle the attacker reads victim outputs from (`intercept`) and may query (`__call__`),
    perturbed by an optional output `defense`."""

    def __init__(self, model: LayeredNet, budget: int | None, observation: Observation, defense: OutputDefense | None):
        super().__init__(budget)
        self.model, self.defense = model, defense
        if defense is not None:
            defense.check_observation(observation)

    def clean(self, x: torch.Tensor) -> torch.Tensor:
        """The undefended observation of `x`."""
        raise NotImplementedError

    def observe(self, x: torch.Tensor) -> torch.Tensor:
        """The observation of `x` as released: perturbed by the defense, if any."""
        o = self.clean(x)
        return o if self.defense is None else self.defense.perturb(o)

    @torch.no_grad()
    def _batched(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        self.model.eval()
        device = self.device
        return torch.cat([self.observe(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """An attacker query: answers for chosen inputs, counted against the budget, without gradients."""
        self.charge(x.shape[0])
        return self._batched(x)

    def intercept(self, x: torch.Tensor) -> torch.Tensor:
        """What the attacker sees of the victim's own traffic: not a query, not counted."""
        return self._batched(x)


class Features(_Observer):
    """Split-layer features f1(x) at `layer`."""

    provides = frozenset({"features"})

    def __init__(self, model: LayeredNet, layer: str, budget: int | None = None, defense: OutputDefense | None = None):
        super().__init__(model, budget, "features", defense)
        self.layer = model.check_layer(layer)
        if defense is not None and defense.layer not in (None, layer):
            raise ModelinvError(f"defense '{defense.name}' acts on layer '{defense.layer}', but the attacker observes '{layer}' (access.layer)")

    def clean(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x, self.layer)


_SCORE_VIEWS: dict[Observation, Callable[[torch.Tensor], torch.Tensor]] = {
    "logits": lambda z: z,
    "probs": lambda z: z.softmax(1),
    "label": lambda z: z.argmax(1),
}


class Scores(_Observer):
    """The model's output as `kind` = logits | probs | label (top-1 class index)."""

    def __init__(self, model: LayeredNet, kind: Observation = "probs", budget: int | None = None, defense: OutputDefense | None = None):
        if kind not in _SCORE_VIEWS:
            raise AccessDenied(f"scores kind must be one of {', '.join(SCORES)}, not '{kind}'")
        super().__init__(model, budget, kind, defense)
        self.kind = kind
        derivable = {"logits": {"logits", "probs", "label"}, "probs": {"probs", "label"}, "label": {"label"}}
        self.provides = frozenset(derivable[kind])

    def clean(self, x: torch.Tensor) -> torch.Tensor:
        return _SCORE_VIEWS[self.kind](self.model(x))


@dataclass
class ThreatModel:
    """What the attacker sees of the victim (`observer`) and what it knows of the model (`white_box`)."""

    observer: Features | Scores | None = None
    white_box: WhiteBox | None = None

    @property
    def device(self) -> torch.device:
        """Where the attack's own tensors and networks belong: the white-box model's device, else the
        observation oracle's (a remote oracle's is where its answers are put), else the CPU."""
        oracle = self.white_box if self.white_box is not None else self.observer
        return oracle.device if oracle is not None else torch.device("cpu")

    def describe(self) -> str:
        parts = []
        if self.observer is not None:
            parts.append(f"features({self.observer.layer})" if isinstance(self.observer, Features) else self.observer.kind)
            if self.observer.defense is not None:
                parts[-1] += f" under {self.observer.defense.name}"
        if self.white_box is not None:
            parts.append(f"white-box {self.white_box.part}")
        return " + ".join(parts) or "nothing"

    @property
    def queries(self) -> int:
        """Inputs the attacker submitted to the observation oracle (black-box queries)."""
        return self.observer.queries if self.observer is not None else 0

    @property
    def gradients(self) -> int:
        """Inputs the attacker passed through the white-box model (forward/gradient evaluations)."""
        return self.white_box.queries if self.white_box is not None else 0

    def require(self, attack: str, observes: frozenset[str], white_box: frozenset[str]) -> None:
        """Raise AccessDenied unless this threat model grants one of `observes` and one of `white_box`."""
        granted = self.observer.provides if self.observer is not None else frozenset()
        if observes and not observes & granted:
            raise AccessDenied(
                f"attack '{attack}' needs to observe {' or '.join(sorted(observes))}; the threat model grants {self.describe()}"
            )
        parts = {self.white_box.part} if self.white_box is not None else set()
        if white_box and not ({"full"} | set(white_box)) & parts:
            raise AccessDenied(
                f"attack '{attack}' needs white-box access to the {' or '.join(sorted(white_box))} model; "
                f"the threat model grants {self.describe()}"
            )
