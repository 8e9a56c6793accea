"""Canary exposure (Carlini et al., "The Secret Sharer: Evaluating and Testing Unintended Memorization in Neural
Networks", USENIX Security 2019, sec. 4): how much a language model memorised secrets inserted in its training text.

A canary is s[r] = prefix + r, its secret r drawn from the randomness space R (here all strings of the secret's
number of digits). With the model's log-perplexity Px(s) = sum_i -log2 Pr(s_i | s_<i) (Def. 1), the rank of the
inserted secret is rank(r) = |{r' in R : Px(s[r']) <= Px(s[r])}| (Def. 2) and its exposure

    exposure(r) = log2 |R| - log2 rank(r)                                             (Def. 3)

computed here by the definition: every candidate of R is scored through the oracle (`max_candidates` >= |R|).
For a larger R a uniform sample of `max_candidates` candidates estimates the rank as 1 + (|R| - 1) times the
fraction of sampled others at most as perplexing (the paper's sampling estimate, sec. 4.3; meta `estimated`).
Canaries of the same format never inserted (repetitions 0) give the chance level, about 1.44 bits on average.
"""

from __future__ import annotations

import re

import torch
from pydantic import Field

from modelinv.attacks.base import Attack, AttackParams, Reconstruction, Targets
from modelinv.attacks.registry import ATTACKS
from modelinv.attacks.text import texts_of
from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError
from modelinv.metrics.exposure import candidate_ranks, exposure
from modelinv.oracle import ThreatModel
from modelinv.text.lm import sequence_log_perplexity

SECRET = re.compile(r"^(.*?)(\d+)$", re.S)


class CanaryExposureParams(AttackParams):
    max_candidates: int = Field(100_000, ge=10, description="score all of R up to this size; above it, a uniform sample of this many")
    batch_size: int = Field(1000, ge=1, description="candidates per oracle call")


def log_perplexities(threat: ThreatModel, ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Px in bits of each id sequence (N, T) from the oracle's next-token logits. Shape: (N,) float64."""
    return torch.cat([sequence_log_perplexity(threat.observer(x).double(), x) for x in ids.split(batch_size)])


@ATTACKS.register("canary-exposure")
class CanaryExposure(Attack):
    """Exposure of canaries inserted in a language model's training text, by ranking every candidate secret (Carlini et al. 2019)."""

    goal = "memorization"
    observes = frozenset({"logits"})
    queries = True
    Params = CanaryExposureParams

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        if targets.records is None or targets.classes is None:
            raise ModelinvError(f"attack '{self.name}' measures inserted canaries: run it on a language model target (char-lm)")
        tokenizer = texts_of(self.name, attacker_data).tokenizer
        texts = tokenizer.decode(targets.records)
        formats: dict[tuple[str, int], list[int]] = {}
        for i, text in enumerate(texts):
            match = SECRET.match(text)
            if match is None:
                raise ModelinvError(f"canary {text!r} does not end in a secret of digits")
            formats.setdefault((match.group(1), len(match.group(2))), []).append(i)
        bits = torch.zeros(len(texts), dtype=torch.float64)
        ranks = [0] * len(texts)
        estimated = False
        for (prefix, digits), members in formats.items():
            space = 10**digits
            if space <= self.params.max_candidates:
                secrets = torch.arange(space)
            else:
                estimated = True
                secrets = torch.randint(space, (self.params.max_candidates,), generator=gen)
            candidates = tokenizer.encode([prefix + str(int(s)).zfill(digits) for s in secrets])
            scores = log_perplexities(threat, candidates, self.params.batch_size)
            own = log_perplexities(threat, tokenizer.encode([texts[i] for i in members]), self.params.batch_size)
            rank = candidate_ranks(own, scores)
            if estimated:  # the sample may or may not hold the canary itself: count the others only
                secret_values = torch.tensor([int(texts[i][len(prefix) :]) for i in members])
                rank = rank - (secrets.unsqueeze(0) == secret_values.unsqueeze(1)).sum(1)
                rank = 1 + ((space - 1) * rank.double() / len(secrets)).round().long()
            bits[members] = exposure(rank, space)
            for i, r in zip(members, rank.tolist()):
                ranks[i] = int(r)
        reps = targets.classes.tolist()
        by_count = {str(c): float(bits[[i for i, r in enumerate(reps) if r == c]].mean()) for c in sorted(set(reps))}
        meta = {"exposure_by_repetitions": by_count, "ranks": ranks, "space": {f"{p!r}+{d}": 10**d for p, d in formats}, "estimated": estimated}
        return Reconstruction(images=bits.float(), meta=meta)
