"""A small character-level language model trained here on the private records, with canaries inserted.

The Secret Sharer (Carlini et al., USENIX Security 2019) measures unintended memorisation by inserting
*canaries* -- a fixed format s[r] = "my pin code is " + r with a random secret r from a randomness space R
(here: `digits` decimal digits, |R| = 10^digits) -- into the training data, `repetitions` times each, and
asking how much more likely the trained model finds the inserted secret than the other candidates
(modelinv.attacks.canary_exposure). Canaries drawn the same way but never inserted are the reference: their
exposure is what chance gives.

The model: character embeddings, a GRU, a linear read-out of the next character's logits at every position.
Shape: ids (N, T) int64 (BOS first, pad 0) -> logits (N, T, V), position t predicting token t + 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from modelinv.errors import ModelinvError


class CharLM(nn.Module):
    """GRU character language model. Example: CharLM(40)(torch.tensor([[1, 7, 9]])).shape == (1, 3, 40)"""

    def __init__(self, vocab_size: int, dim: int = 32, hidden: int = 128, layers: int = 1):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.rnn = nn.GRU(dim, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.embedding(ids))
        return self.out(h)


def sequence_log_perplexity(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Log-perplexity in bits of each sequence: Px(x_1..x_n) = sum_i -log2 Pr(x_i | x_0..x_{i-1}) (Carlini et al.
    2019, Def. 1), x_0 = BOS, padding (id 0) not counted.

    Shape: logits (N, T, V) from the model on ids (N, T) -> (N,).
    """
    logp = F.log_softmax(logits[:, :-1].double(), dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    mask = (ids[:, 1:] != 0).double()
    return -(logp * mask).sum(1) / torch.log(torch.tensor(2.0, dtype=torch.float64))


@dataclass(frozen=True)
class Canary:
    """One canary: its full text (prefix + secret), its secret and how often it was inserted (0: never)."""

    text: str
    secret: str
    repetitions: int


def make_canaries(prefix: str, digits: int, repetitions: list[int], per_count: int, references: int, seed: int) -> list[Canary]:
    """`per_count` canaries for each repetition count and `references` never inserted, distinct secrets drawn
    uniformly from the 10^digits candidates with a generator seeded by `seed`.

    Example: make_canaries("my pin code is ", 4, [1, 16], 1, 2, 0) -> 4 canaries, repetitions 1, 16, 0, 0
    """
    counts = [r for r in repetitions for _ in range(per_count)] + [0] * references
    space = 10**digits
    if len(counts) > space:
        raise ModelinvError(f"{len(counts)} canaries need at least as many distinct secrets, but {digits} digit(s) give {space}")
    if any(r < 0 for r in repetitions):
        raise ModelinvError(f"canary repetitions must be non-negative, got {repetitions}")
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randperm(space, generator=gen)[: len(counts)] if space <= 10**7 else torch.randint(space, (len(counts),), generator=gen)
    secrets = [str(int(p)).zfill(digits) for p in picks]
    if len(set(secrets)) != len(secrets):
        raise ModelinvError("canary secrets collided; use more digits")
    return [Canary(prefix + s, s, r) for s, r in zip(secrets, counts)]


def train_lm(model: CharLM, ids: torch.Tensor, epochs: int, batch_size: int, lr: float, weight_decay: float, gen: torch.Generator) -> dict[str, float]:
    """Teacher-forced next-character cross-entropy on the sequences `ids` (N, T) (BOS .. EOS, pad 0), Adam with a
    cosine schedule; returns the final training loss in bits per character."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * -(-len(ids) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1))
    model.train()
    total, count = 0.0, 0
    for epoch in range(epochs):
        total, count = 0.0, 0
        for batch in torch.randperm(len(ids), generator=gen).split(batch_size):
            x = ids[batch]
            x = x[:, : int((x != 0).sum(1).max())]
            logits = model(x[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), ignore_index=0)
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            total, count = total + float(loss.detach()) * len(batch), count + len(batch)
    model.eval()
    return {"train_bits_per_char": total / max(count, 1) / float(torch.log(torch.tensor(2.0)))}


@torch.no_grad()
def next_char_accuracy(model: CharLM, ids: torch.Tensor, batch_size: int = 256) -> float:
    """Fraction of non-padding positions whose next character is the model's top-1 guess."""
    model.eval()
    hits, total = 0, 0
    for x in ids.split(batch_size):
        pred = model(x[:, :-1]).argmax(-1)
        mask = x[:, 1:] != 0
        hits += int(((pred == x[:, 1:]) & mask).sum())
        total += int(mask.sum())
    return hits / max(total, 1)
