"""Bag-of-words inversion metrics (Song & Raghunathan, "Information Leakage in Embedding Models", CCS 2020, sec. 4):
precision, recall and F1 of the set of content words an attack recovers from each embedding.

Inputs are indicator matrices over one vocabulary (columns: words): `reconstructions` (N, V) 1 where the attack
says the word is in text i; `truth` (N, V) 0 where the word is absent from text i, 1 where it is a content word
of it, 2 where it is also a sensitive word (a name, a diagnosis). Per text i with recovered set P_i and true set T_i:

    precision_i = |P_i & T_i| / |P_i|,  recall_i = |P_i & T_i| / |T_i|,  F1_i = 2 |P_i & T_i| / (|P_i| + |T_i|)

(0 where the denominator is 0), averaged over texts: scikit-learn's `f1_score(T, P, average="samples",
zero_division=0)` and the same for precision and recall. `bow_sensitive_recall` is the fraction of all
sensitive words of the attacked texts that were recovered (n/a when they have none).
"""

from __future__ import annotations

import torch

from modelinv.metrics.base import Metric, MetricInputs, register


def bow_scores(pred: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-text precision, recall and F1 of recovered word sets (see the module docstring).

    Shape: pred (N, V), truth (N, V) (nonzero = present) -> three (N,) float64.
    Example: bow_scores(torch.tensor([[1, 1, 0]]), torch.tensor([[1, 0, 1]])) -> (0.5,), (0.5,), (0.5,)
    """
    p, t = pred > 0, truth > 0
    hits = (p & t).sum(1).double()
    np_, nt = p.sum(1).double(), t.sum(1).double()
    precision = torch.where(np_ > 0, hits / np_.clamp_min(1), torch.zeros_like(hits))
    recall = torch.where(nt > 0, hits / nt.clamp_min(1), torch.zeros_like(hits))
    f1 = torch.where(np_ + nt > 0, 2 * hits / (np_ + nt).clamp_min(1), torch.zeros_like(hits))
    return precision, recall, f1


def sensitive_recall(pred: torch.Tensor, truth: torch.Tensor) -> float | None:
    """Recovered sensitive words (truth == 2) over all sensitive words; None when there are none."""
    sensitive = truth == 2
    total = int(sensitive.sum())
    return None if total == 0 else float(((pred > 0) & sensitive).sum()) / total


class BowMetric(Metric):
    """Bag-of-words inversion scored on content words (Song & Raghunathan, CCS 2020)."""

    needs = frozenset({"truth"})
    higher_is_better = True
    bounds = (0.0, 1.0)

    def __init__(self, name: str, part: int | None, summary: str):
        self.name, self.part, self._summary = name, part, summary

    @property
    def summary(self) -> str:
        return self._summary

    def evaluate(self, inputs: MetricInputs) -> float | None:
        if self.part is None:
            return sensitive_recall(inputs.reconstructions, inputs.truth)
        return float(bow_scores(inputs.reconstructions, inputs.truth)[self.part].mean())


register(BowMetric("bow_precision", 0, "precision of the recovered content words per text, averaged over texts"))
register(BowMetric("bow_recall", 1, "recall of the recovered content words per text, averaged over texts"))
register(BowMetric("bow_f1", 2, "F1 of the recovered content words per text, averaged over texts (Song & Raghunathan 2020)"))
register(BowMetric("bow_sensitive_recall", None, "fraction of the sensitive words (names, diagnoses) of the texts recovered"))
