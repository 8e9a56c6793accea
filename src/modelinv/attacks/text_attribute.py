"""Attribute inference from sentence embeddings (Song & Raghunathan, "Information Leakage in Embedding Models",
CCS 2020, sec. 5): which of K candidate values (e.g. a diagnosis) a text holds, from its embedding alone.

The attacker queries the embedding model Phi with its own labelled texts (x_a, s_a) and fits a multinomial logistic
regression on standardised embeddings,

    Pr(s = k | e) = softmax(W e + b)_k,   min_{W,b}  - sum_a log Pr(s_a | Phi(x_a)) + ||W||^2 / (2C),

then scores every candidate for each victim embedding. Judged against the prior: always guessing the attacker's
most common value (`cand_advantage`). The same regression reads a text classifier's scores (logits or
probabilities, e.g. `text-encoder`'s head) in place of Phi where those are what the target releases.
"""

from __future__ import annotations

import torch
from pydantic import Field

from modelinv.attacks.base import Attack, AttackParams, Reconstruction, Targets
from modelinv.attacks.registry import ATTACKS
from modelinv.attacks.text import embeddings_of, texts_of
from modelinv.data.types import Dataset
from modelinv.oracle import ThreatModel


class TextAttributeParams(AttackParams):
    C: float = Field(1.0, gt=0, description="inverse L2 regularisation strength of the logistic regression")


@ATTACKS.register("text-attribute")
class TextAttribute(Attack):
    """Infer a sensitive attribute (e.g. a diagnosis) of embedded texts with a classifier trained on labelled public texts."""

    goal = "text-attribute"
    observes = frozenset({"features", "logits", "probs"})  # sentence embeddings, or a text classifier's scores
    queries = True
    Params = TextAttributeParams

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        from sklearn.linear_model import LogisticRegression  # as modelinv.functional: scikit-learn is imported where used

        seen = embeddings_of(self.name, targets)
        public = texts_of(self.name, attacker_data)
        e = threat.observer(public.x).double()
        mean, std = e.mean(0), e.std(0).clamp_min(1e-8)
        scores = torch.zeros(len(seen), public.num_classes, dtype=torch.float64)
        present = public.y.unique()
        if len(present) == 1:
            scores[:, present] = 1.0
        else:
            fitted = LogisticRegression(C=self.params.C, max_iter=1000).fit(((e - mean) / std).numpy(), public.y.numpy())
            probs = torch.from_numpy(fitted.predict_proba(((seen.double() - mean) / std).numpy()))
            scores[:, torch.from_numpy(fitted.classes_).long()] = probs
        return Reconstruction(images=scores.float(), meta={"candidates": list(public.classes)})
