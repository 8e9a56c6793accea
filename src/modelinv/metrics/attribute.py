"""Attribute-inference metrics (Fredrikson et al., USENIX Security 2014, sec. 4.3): how often an attack's guess
of the sensitive value is right, against what needs no model at all.

- `attr_acc`: fraction of records whose sensitive value (level or bin) the attack guessed right;
- `attr_precision`, `attr_recall`: on the positive sensitive level (data.tabular.positive; default the last);
- `attr_baseline_acc`: always guessing the most common value among the attacker's public records;
- `attr_ideal_acc`: a predictor trained on the same public records with the sensitive column in full, from
  the other columns and the true label (the paper's "ideal" model, which needs no access to the target);
- `attr_advantage`: attr_acc - attr_baseline_acc, the headline number: what the model's answers add to the prior.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from modelinv.data.schema import sensitive_of
from modelinv.functional import fit_predictor
from modelinv.metrics.base import Metric, MetricInputs, register


def _guesses(inputs: MetricInputs) -> tuple[torch.Tensor, torch.Tensor]:
    sensitive = sensitive_of(inputs.public)
    return sensitive.values(inputs.reconstructions), sensitive.values(inputs.truth)


def _rate(hits: torch.Tensor, among: torch.Tensor) -> float:
    return float(hits[among].float().mean()) if bool(among.any()) else float("nan")


def _accuracy(inputs: MetricInputs) -> float:
    guess, truth = _guesses(inputs)
    return float((guess == truth).float().mean())


def _positives(inputs: MetricInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Which records the attack guessed to hold the positive value, and which do."""
    guess, truth = _guesses(inputs)
    sensitive = sensitive_of(inputs.public)
    positive = sensitive.positive % sensitive.num_values
    return guess == positive, truth == positive


def _precision(inputs: MetricInputs) -> float:
    guessed, holding = _positives(inputs)
    return _rate(holding, guessed)


def _recall(inputs: MetricInputs) -> float:
    guessed, holding = _positives(inputs)
    return _rate(guessed, holding)


def _baseline(inputs: MetricInputs) -> float:
    sensitive = sensitive_of(inputs.public)
    mode = torch.bincount(sensitive.values(inputs.public.x), minlength=sensitive.num_values).argmax()
    return float((sensitive.values(inputs.truth) == mode).float().mean())


def _ideal(inputs: MetricInputs) -> float:
    sensitive, public = sensitive_of(inputs.public), inputs.public

    def features(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([sensitive.others(x), F.one_hot(y, public.num_classes).float()], dim=1)

    predict = fit_predictor(features(public.x, public.y), sensitive.values(public.x))
    return float((predict(features(inputs.truth, inputs.labels)) == sensitive.values(inputs.truth)).float().mean())


class AttributeMetric(Metric):
    """Attribute inference scored on the sensitive value of each attacked record (Fredrikson et al. 2014)."""

    needs = frozenset({"truth", "public"})
    higher_is_better = True
    KINDS: dict[str, tuple[Callable[[MetricInputs], float], str]] = {
        "acc": (_accuracy, "Fraction of attacked records whose sensitive value the attack guessed"),
        "precision": (_precision, "Of the records guessed to hold the positive sensitive value, the fraction that do"),
        "recall": (_recall, "Of the records holding the positive sensitive value, the fraction guessed"),
        "baseline_acc": (_baseline, "Accuracy of guessing the most common sensitive value of the public records"),
        "ideal_acc": (_ideal, "Accuracy of a predictor trained on the public records with the sensitive column, without the model"),
        "advantage": (lambda inputs: _accuracy(inputs) - _baseline(inputs), "attr_acc minus attr_baseline_acc: what the model adds to the prior"),
    }

    def __init__(self, kind: str):
        self.kind = kind
        self.name = f"attr_{kind}"
        self.bounds = (-1.0, 1.0) if kind == "advantage" else (0.0, 1.0)  # a fraction, or a fraction minus the prior's

    @property
    def summary(self) -> str:
        return self.KINDS[self.kind][1]

    def evaluate(self, inputs: MetricInputs) -> float:
        return self.KINDS[self.kind][0](inputs)


for _kind in AttributeMetric.KINDS:
    register(AttributeMetric(_kind))
