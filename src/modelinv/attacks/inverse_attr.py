"""Inverse attribute model: learn the sensitive value from the other columns and the model's output.

The attacker queries the black-box oracle with its public records X_a (sensitive column included), obtains
O_a = oracle(X_a), and fits g: (x_-s, o) -> s on them, a multinomial logistic regression on standardised
inputs (the learner of the `attr_ideal_acc` reference, fed the model's output instead of the true label).
A victim's sensitive value is then guessed as g(x_-s, o) from its observed output o. This is the
learning-based attribute inference of the split-NN inverse network (He et al., ACSAC 2019, sec. 5) and of
Mehnaz et al. (USENIX Security 2022, "black-box model inversion attribute inference"), in its simplest form.
"""

from __future__ import annotations

import torch
from pydantic import Field

from modelinv.attacks.attribute import as_vectors, completed, observed, records_of
from modelinv.attacks.base import Attack, AttackParams, Reconstruction, Targets
from modelinv.attacks.registry import ATTACKS
from modelinv.data.schema import sensitive_of
from modelinv.data.types import Dataset
from modelinv.functional import fit_predictor
from modelinv.oracle import ThreatModel


class InverseAttrParams(AttackParams):
    C: float = Field(1.0, gt=0, description="inverse L2 regularisation strength of the logistic regression")


@ATTACKS.register("inverse-attr")
class InverseAttr(Attack):
    """Attribute inference by a model trained on (public features, model output) -> sensitive value."""

    goal = "attribute"
    observes = frozenset({"probs", "logits", "label"})
    queries = True
    Params = InverseAttrParams

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        # the regression is scikit-learn's: fitted and applied on the CPU, whatever device the model runs on
        records = records_of(self.name, targets).cpu()
        seen = as_vectors(observed(self.name, targets), attacker_data.num_classes).cpu()
        sensitive = sensitive_of(attacker_data)
        public = attacker_data.x.cpu()
        outputs = as_vectors(threat.observer(public), attacker_data.num_classes).cpu()
        predict = fit_predictor(torch.cat([sensitive.others(public), outputs], 1), sensitive.values(public), self.params.C)
        guess = predict(torch.cat([sensitive.others(records), seen], 1))
        return completed(records, sensitive, sensitive.candidates(public), guess)
