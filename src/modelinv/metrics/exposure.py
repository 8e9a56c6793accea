"""Exposure of inserted secrets (Carlini et al., "The Secret Sharer", USENIX Security 2019, sec. 4).

For a canary s[r] with secret r from the randomness space R, rank the log-perplexity Px(s[r]) (bits, lower =
more likely) among all candidates r' in R:

    rank(r) = |{r' in R : Px(s[r']) <= Px(s[r])}|        (1 for the most likely candidate)
    exposure(r) = log2 |R| - log2 rank(r)                 (Def. 3; 0 <= exposure <= log2 |R|)

Counting ties as ranked before the canary (<=) makes a model that scores every candidate alike expose nothing.
A never-inserted canary has a uniform rank, so its expected exposure is about 1/ln 2 = 1.44 bits.

Registered metrics read an attack's output: `reconstructions` = exposure of each canary in bits (N,), `labels` =
how many times each was inserted (0: never):
- `exposure`: mean exposure of the canaries inserted most often (the headline);
- `exposure_inserted`: mean exposure over every inserted canary (n/a when none was inserted).
"""

from __future__ import annotations

import math

import torch

from modelinv.metrics.base import Metric, MetricInputs, register


def candidate_ranks(canary: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """rank of each canary's log-perplexity among the candidates': the number of candidates at most as perplexing.

    Shape: canary (K,), candidates (|R|,) -> (K,) int64, in 1..|R| when each canary is itself a candidate.
    Example: candidate_ranks(torch.tensor([2.0]), torch.tensor([1.0, 2.0, 3.0])) -> tensor([2])
    """
    ordered = candidates.sort().values
    return torch.searchsorted(ordered, canary.to(ordered.dtype), right=True)


def exposure(rank: torch.Tensor, space: int) -> torch.Tensor:
    """log2 |R| - log2 rank, in bits (Carlini et al. 2019, Def. 3).

    Shape: rank (K,) -> (K,) float64. Example: exposure(torch.tensor([1, 1024]), 1024) -> tensor([10., 0.])
    """
    return math.log2(space) - torch.log2(rank.double().clamp_min(1.0))


def _top(inputs: MetricInputs) -> float:
    return inputs.reconstructions[inputs.labels == inputs.labels.max()].double().mean()


def _inserted(inputs: MetricInputs) -> float | None:
    keep = inputs.labels > 0
    return inputs.reconstructions[keep].double().mean() if bool(keep.any()) else None


class ExposureMetric(Metric):
    """Exposure in bits of canaries inserted in a language model's training text (Carlini et al. 2019)."""

    higher_is_better = True
    bounds = (0.0, math.inf)

    def __init__(self, name: str, fn, summary: str):
        self.name, self.fn, self._summary = name, fn, summary

    @property
    def summary(self) -> str:
        return self._summary

    def evaluate(self, inputs: MetricInputs) -> float | None:
        return self.fn(inputs)


register(ExposureMetric("exposure", _top, "mean exposure (bits) of the canaries inserted most often (Carlini et al. 2019)"))
register(ExposureMetric("exposure_inserted", _inserted, "mean exposure (bits) of every inserted canary"))
