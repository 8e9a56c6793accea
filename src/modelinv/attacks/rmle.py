"""rMLE: regularised maximum-likelihood estimation of a split network's input (He, Zhang & Lee, ACSAC 2019, sec. 4).

Given white-box access to the client part f1 and an observed split-layer activation h0 = f1(x0), solve

    x* = argmin_{x in [0,1]} ||f1(x) - h0||^2 + lambda * TV(x)

with Adam from x = 0.5, projecting onto [0, 1] after each step; all targets are optimised as one batch
(`modelinv.attacks.feature_inversion`). The paper's schedules are the defaults: a shallow cut (one
parametric layer) uses lr 1e-2 for 500 iterations, a deeper cut lr 1e-3 for 5000. The run's details record
the schedule used and, under `defaults`, the paper's schedule at that cut, so a report can say when the budget was
reduced.
"""

from __future__ import annotations

import torch

from modelinv.attacks.base import Attack, Reconstruction, Targets
from modelinv.attacks.feature_inversion import RMLEParams, invert_features, schedule
from modelinv.attacks.registry import ATTACKS
from modelinv.data.types import Dataset
from modelinv.oracle import ThreatModel


@ATTACKS.register("rmle")
class RMLE(Attack):
    """rMLE (He et al., ACSAC 2019): optimise the input until the client model reproduces the observed features."""

    observes = frozenset({"features"})
    white_box = frozenset({"client"})
    Params = RMLEParams

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        layer = threat.observer.layer
        model = threat.white_box.model
        steps = schedule(model, layer, self.params)
        defaults = schedule(model, layer, RMLEParams())  # the paper's schedule at this cut: a report flags a smaller budget
        f1 = lambda x: threat.white_box.features(x, layer)  # noqa: E731
        images = invert_features(f1, targets.observations.to(threat.device), tuple(model.spec["input_shape"]), **steps, adam_eps=self.params.adam_eps, amsgrad=self.params.amsgrad)
        return Reconstruction(images, {**steps, "defaults": defaults})
