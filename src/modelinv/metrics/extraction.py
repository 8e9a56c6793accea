"""Extraction success of inserted secrets (Carlini et al., "Extracting Training Data from Large Language Models",
USENIX Security 2021): the share of canaries whose secret the attack recovered exactly.

Registered metrics read an extraction attack's output: `reconstructions` = each canary as recovered (its prefix and
the decoded secret, token ids (N, T)), `truth` = the true canaries (N, T), `labels` = how many times each was
inserted (0: never). A canary is extracted when its recovered ids equal the true ones at every position:

- `extraction`: the share extracted among the canaries inserted most often (the headline);
- `extraction_inserted`: the share among every inserted canary (n/a when none was inserted).

Scored on the never-inserted canaries alone (the run's `never-inserted` baseline), `extraction` is the chance
level: a secret the model never saw is found with probability 1/|R|.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from modelinv.metrics.base import Metric, MetricInputs, register


def extracted(inputs: MetricInputs) -> torch.Tensor:
    """Whether each canary was recovered exactly. Shape: (N,) bool.

    Example: reconstructions [[1, 5, 6], [1, 5, 7]], truth [[1, 5, 6], [1, 5, 6]] -> tensor([True, False])
    """
    return (inputs.reconstructions == inputs.truth).reshape(len(inputs.truth), -1).all(1)


def _top(inputs: MetricInputs) -> torch.Tensor:
    return extracted(inputs)[inputs.labels == inputs.labels.max()].double().mean()


def _inserted(inputs: MetricInputs) -> torch.Tensor | None:
    keep = inputs.labels > 0
    return extracted(inputs)[keep].double().mean() if bool(keep.any()) else None


class ExtractionMetric(Metric):
    """Share of inserted secrets extracted exactly from a language model (Carlini et al. 2021)."""

    needs = frozenset({"truth"})
    higher_is_better = True
    bounds = (0.0, 1.0)

    def __init__(self, name: str, fn: Callable[[MetricInputs], torch.Tensor | None], summary: str):
        self.name, self.fn, self._summary = name, fn, summary

    @property
    def summary(self) -> str:
        return self._summary

    def evaluate(self, inputs: MetricInputs) -> float | None:
        value = self.fn(inputs)
        return None if value is None else float(value)


register(ExtractionMetric("extraction", _top, "share of the canaries inserted most often whose secret was extracted exactly (Carlini et al. 2021)"))
register(ExtractionMetric("extraction_inserted", _inserted, "share of every inserted canary whose secret was extracted exactly"))
