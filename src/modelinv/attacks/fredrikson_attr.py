"""Fredrikson et al.'s attribute inversion (USENIX Security 2014, sec. 4, the warfarin attack).

The attacker knows a victim's non-sensitive features x_-s and evidence e about the model on the full record,
and the marginal prior p(v) of the sensitive value (from its public records). It guesses

    v* = argmax_v  p(v) * pi(e | f(x_-s, v))

over the sensitive values v (a level, or the median public value of a bin), where pi is an error model:

- evidence "output" (the victim's released output o): pi(o | f(x_v)) = N(o; f(x_v), sigma^2 I), with the
  candidate output seen through the same view (probs, logits, one-hot label) and the same output defense;
- evidence "label" (the victim's true label y, as the patient's dose in the paper): black-box,
  pi(y | f(x_v)) = C[y, argmax f(x_v)], the confusion of the model's labels, P(true y | predicted),
  estimated on the attacker's public records (Laplace smoothed); white-box, the model's exact likelihood
  softmax(f(x_v))_y.

Two attacks, whose requirements are fixed: `fredrikson-attr` (black-box) queries the oracle with each
candidate record (K queries per victim); `fredrikson-attr-wb` (white-box) evaluates the known model instead
(counted as gradient evaluations, no queries), and needs to observe the victims' outputs only with evidence
"output".
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field

from modelinv.attacks.attribute import as_vectors, completed, observed, records_of
from modelinv.attacks.base import Attack, AttackParams, Reconstruction, Targets
from modelinv.attacks.registry import ATTACKS
from modelinv.data.schema import sensitive_of
from modelinv.data.types import Dataset
from modelinv.oracle import ThreatModel

SCORES = frozenset({"probs", "logits", "label"})
VIEWS = {"probs": lambda z: z.softmax(1), "logits": lambda z: z, "label": lambda z: z.argmax(1)}


class FredriksonAttrParams(AttackParams):
    evidence: Literal["output", "label"] = Field("output", description="the victim's released output, or its true label")
    sigma: float = Field(0.05, gt=0, description="std of the Gaussian error model on released outputs")
    smoothing: float = Field(1.0, gt=0, description="Laplace count added to the prior and confusion counts")


class FredriksonAttr(Attack):
    """Attribute inversion: argmax_v prior(v) * P(output | record with v) (Fredrikson et al., USENIX Security 2014)."""

    goal = "attribute"
    Params = FredriksonAttrParams
    variant: ClassVar[str]

    def candidate_outputs(self, threat: ThreatModel, x: torch.Tensor, num_classes: int) -> torch.Tensor:
        """The model's outputs on the candidate records `x`, as vectors (N, C)."""
        raise NotImplementedError

    def label_log_likelihood(self, threat: ThreatModel, public: Dataset, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log pi(y | f(x_v)) for the victims' true labels `y` (N,) and the candidates' `outputs` (N, K, C): (N, K)."""
        raise NotImplementedError

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        p = self.params
        records = records_of(self.name, targets)
        sensitive = sensitive_of(attacker_data)
        values = sensitive.candidates(attacker_data.x)
        k, c = sensitive.num_values, attacker_data.num_classes
        seen = as_vectors(observed(self.name, targets), c).to(records.device) if p.evidence == "output" else None
        counts = torch.bincount(sensitive.values(attacker_data.x), minlength=k).float()
        log_prior = ((counts + p.smoothing) / (counts.sum() + k * p.smoothing)).log()
        # the model runs on its device; the records' bookkeeping stays on theirs
        outputs = self.candidate_outputs(threat, sensitive.fill(records, values).flatten(0, 1), c).to(records.device).view(len(records), k, -1)
        if seen is not None:
            log_lik = -((outputs - seen.unsqueeze(1)) ** 2).sum(2) / (2 * p.sigma**2)
        else:
            log_lik = self.label_log_likelihood(threat, attacker_data, outputs, targets.classes.to(records.device))
        guess = (log_prior + log_lik).argmax(1)
        return completed(records, sensitive, values, guess, variant=self.variant, evidence=p.evidence)


@ATTACKS.register("fredrikson-attr")
class FredriksonAttrBlackBox(FredriksonAttr):
    """Fredrikson et al.'s attribute inversion, black-box: the candidate records' outputs are queried from the oracle."""

    observes = SCORES
    queries = True
    variant = "black-box"

    def candidate_outputs(self, threat: ThreatModel, x: torch.Tensor, num_classes: int) -> torch.Tensor:
        return as_vectors(threat.observer(x), num_classes)

    def label_log_likelihood(self, threat: ThreatModel, public: Dataset, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The confusion of the model's labels, P(true y | predicted label), estimated on the public records."""
        c = public.num_classes
        device = outputs.device
        predicted = as_vectors(threat.observer(public.x), c).argmax(1).to(device)
        joint = torch.zeros(c, c, device=device).index_put_((public.y.to(device), predicted), torch.ones(len(predicted), device=device), accumulate=True) + self.params.smoothing
        confusion = joint / joint.sum(0, keepdim=True)  # P(true label | predicted label)
        return confusion.log()[y.unsqueeze(1), outputs.argmax(2)]


@ATTACKS.register("fredrikson-attr-wb")
class FredriksonAttrWhiteBox(FredriksonAttr):
    """Fredrikson et al.'s attribute inversion, white-box: the known model is evaluated on the candidate records (no queries)."""

    white_box = frozenset({"full"})
    variant = "white-box"

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        if self.params.evidence == "output":  # the released outputs are evidence: they must be observed
            threat.require(self.name, SCORES, self.white_box)
        return super().run(threat, targets, attacker_data, gen)

    def candidate_outputs(self, threat: ThreatModel, x: torch.Tensor, num_classes: int) -> torch.Tensor:
        """The known model's logits (evidence "label"), or its outputs in the view the attacker observes."""
        with torch.no_grad():
            logits = threat.white_box(x)
        if self.params.evidence == "label":
            return logits
        return as_vectors(VIEWS[threat.observer.kind](logits), num_classes)

    def label_log_likelihood(self, threat: ThreatModel, public: Dataset, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The model's exact likelihood of the true label, softmax(f(x_v))_y."""
        return outputs.log_softmax(2).gather(2, y.view(-1, 1, 1).expand(-1, outputs.shape[1], 1)).squeeze(2)
