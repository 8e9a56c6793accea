"""Embedding inversion to a bag of words (Song & Raghunathan, "Information Leakage in Embedding Models",
CCS 2020, sec. 4.2, "multi-set prediction" as multi-label classification).

The attacker queries the embedding model Phi with its own public texts x_a, obtaining e_a = Phi(x_a), and fits an
inversion model Psi: R^D -> [0, 1]^V, one sigmoid per word w of a vocabulary V, by minimising the multi-label
binary cross-entropy

    L(Psi) = - sum_a sum_{w in V} [ y_aw log Psi_w(e_a) + (1 - y_aw) log(1 - Psi_w(e_a)) ],   y_aw = 1[w in x_a]

(the paper's eq. 4 with the set-of-words loss). A victim's words are then {w : Psi_w(e) >= tau}. Here V is the
`max_vocab` content words (modelinv.data.text.content_words) most frequent in the attacker's texts, Psi an MLP
with one hidden layer (`hidden` = 0: linear, as the paper's simplest inverter), and the threshold tau, unless given,
the one maximising the mean per-text F1 on a held-out fifth of the attacker's texts. Words the attacker never saw
cannot be recovered: with public text of another domain (cross-domain split) only shared words are.
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from modelinv.attacks.base import Attack, AttackParams, Reconstruction, Targets
from modelinv.attacks.registry import ATTACKS
from modelinv.attacks.text import embeddings_of, texts_of
from modelinv.data.text import content_words
from modelinv.data.types import Dataset
from modelinv.metrics.bow import bow_scores
from modelinv.oracle import ThreatModel
from modelinv.seeding import seeded


class BowInversionParams(AttackParams):
    max_vocab: int = Field(3000, ge=1, description="content words the inverter predicts: the most frequent in the attacker's texts")
    min_count: int = Field(2, ge=1, description="a word enters the vocabulary if at least this many attacker texts contain it")
    hidden: int = Field(512, ge=0, description="hidden units of the inversion MLP (0: a linear model)")
    epochs: int = Field(60, ge=1)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    threshold: float | None = Field(None, gt=0, lt=1, description="probability above which a word is predicted; None: tuned for F1 on held-out attacker texts")


def vocabulary(texts: list[set[str]], size: int, min_count: int) -> list[str]:
    """The `size` words in most texts (at least `min_count`), ties alphabetical."""
    counts = Counter(w for t in texts for w in t)
    return sorted((w for w in counts if counts[w] >= min_count), key=lambda w: (-counts[w], w))[:size]


def indicators(texts: list[set[str]], vocab: list[str]) -> torch.Tensor:
    """(N, V) 1.0 where word j of `vocab` is in text i."""
    index = {w: j for j, w in enumerate(vocab)}
    out = torch.zeros(len(texts), len(vocab))
    for i, words in enumerate(texts):
        for w in words:
            if w in index:
                out[i, index[w]] = 1.0
    return out


@ATTACKS.register("bow-inversion")
class BowInversion(Attack):
    """Recover the set of content words of embedded texts with a multi-label classifier trained on public text (Song & Raghunathan 2020)."""

    goal = "bag-of-words"
    observes = frozenset({"features"})
    queries = True
    Params = BowInversionParams

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        seen = embeddings_of(self.name, targets)
        public = texts_of(self.name, attacker_data)
        p = self.params
        bags = [content_words(t) for t in public.texts]
        vocab = vocabulary(bags, p.max_vocab, p.min_count)
        if not vocab:
            return Reconstruction(images=torch.zeros(len(seen), 0), meta={"words": [[] for _ in range(len(seen))], "vocabulary_size": 0})
        y = indicators(bags, vocab)
        e = threat.observer(public.x).float()
        order = torch.randperm(len(e), generator=gen)
        held = order[: len(e) // 5] if p.threshold is None else order[:0]
        fit = order[len(held) :]
        with seeded(gen):
            dim = e.shape[1]
            inverter = nn.Linear(dim, len(vocab)) if p.hidden == 0 else nn.Sequential(nn.Linear(dim, p.hidden), nn.ReLU(), nn.Linear(p.hidden, len(vocab)))
        optimiser = torch.optim.Adam(inverter.parameters(), lr=p.lr)
        scale = e[fit].std().clamp_min(1e-8)  # embeddings of any model (unit-norm, noised) on one scale
        for _ in range(p.epochs):
            for batch in fit[torch.randperm(len(fit), generator=gen)].split(p.batch_size):
                loss = F.binary_cross_entropy_with_logits(inverter(e[batch] / scale), y[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        with torch.no_grad():
            threshold = p.threshold
            if threshold is None:
                probs = torch.sigmoid(inverter(e[held] / scale))
                grid = [i / 20 for i in range(1, 20)]
                threshold = max(grid, key=lambda tau: float(bow_scores(probs >= tau, y[held])[2].mean()))
            pred = torch.sigmoid(inverter(seen / scale)) >= threshold
        words = [[vocab[j] for j in row.nonzero().flatten().tolist()] for row in pred]
        return Reconstruction(images=pred.float(), meta={"words": words, "vocabulary_size": len(vocab), "threshold": threshold})
