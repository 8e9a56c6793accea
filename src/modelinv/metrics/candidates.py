"""Attribute inference among candidates (Song & Raghunathan, CCS 2020, sec. 5): how often the attack's most likely
candidate (e.g. diagnosis) of an embedded text is the true one, against the attacker's prior.

`reconstructions` are the attack's scores (N, K) over the K candidates (probabilities or any monotone score),
`labels` the true candidate index of each text (N,). `public` is the attacker's labelled data: its most common
label is the prior-most-likely guess.

- `cand_top1`: fraction of texts whose top-scored candidate is the true one;
- `cand_top5`: the same within the 5 best (n/a with 5 candidates or fewer);
- `cand_advantage`: cand_top1 minus the accuracy of always guessing the attacker's most common label (the headline).
"""

from __future__ import annotations

import torch

from modelinv.metrics.base import Metric, MetricInputs, register


def top_k_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float | None:
    """Fraction of rows whose true label is among the k best scores; None when k >= the number of candidates.

    Shape: scores (N, K), labels (N,). Example: top_k_accuracy(torch.tensor([[0.2, 0.8]]), torch.tensor([1]), 1) -> 1.0
    """
    if k >= scores.shape[1] and k > 1:
        return None
    best = scores.topk(k, dim=1).indices
    return float((best == labels.unsqueeze(1)).any(1).float().mean())


def prior_accuracy(public_labels: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Accuracy of always guessing the most common of `public_labels` (ties: the lowest index)."""
    mode = torch.bincount(public_labels, minlength=num_classes).argmax()
    return float((labels == mode).float().mean())


class CandidateMetric(Metric):
    """Attribute inference among candidates, scored on the true candidate of each text."""

    higher_is_better = True

    def __init__(self, name: str, k: int | None, summary: str):
        self.name, self.k, self._summary = name, k, summary
        self.needs = frozenset({"public"}) if k is None else frozenset()
        self.bounds = (0.0, 1.0) if k is not None else (-1.0, 1.0)  # an accuracy, or an accuracy minus the prior's

    @property
    def summary(self) -> str:
        return self._summary

    def evaluate(self, inputs: MetricInputs) -> float | None:
        scores, labels = inputs.reconstructions, inputs.labels
        if self.k is not None:
            return top_k_accuracy(scores, labels, self.k)
        return top_k_accuracy(scores, labels, 1) - prior_accuracy(inputs.public.y, labels, scores.shape[1])


register(CandidateMetric("cand_top1", 1, "fraction of texts whose most likely candidate (e.g. diagnosis) is the true one"))
register(CandidateMetric("cand_top5", 5, "fraction of texts whose true candidate is among the 5 most likely"))
register(CandidateMetric("cand_advantage", None, "cand_top1 minus the accuracy of the attacker's most common label (the prior)"))
