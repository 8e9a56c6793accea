"""A small character-level language model trained here on the private records, with canaries inserted.

The Secret Sharer (Carlini et al., USENIX Security 2019) measures unintended memorisation by inserting
*canaries* -- a fixed format s[r] = "my pin code is " + r with a random secret r from a randomness space R
(here: `digits` decimal digits, |R| = 10^digits) -- into the training data, `repetitions` times each, and
asking how much more likely the trained model finds the inserted secret than the other candidates
(modelinv.attacks.canary_exposure). Canaries drawn the same way but never inserted are the reference: their
exposure is what chance gives.

A canary prefix holding `{i}` gives every canary a prefix of its own (`{i}` replaced by the canary's index): the
setting of Carlini et al., "Extracting Training Data from Large Language Models" (USENIX Security 2021), where each
training example's prefix is what an extraction decodes its memorised continuation from (modelinv.attacks.extraction).

The model: character embeddings, a GRU, a linear read-out of the next character's logits at every position.
Shape: ids (N, T) int64 (BOS first, pad 0) -> logits (N, T, V), position t predicting token t + 1.

Training (`train_lm`) runs the one minibatch loop (modelinv.models.trainer.train_epochs). A training defense given
as its `hooks` (DP-SGD: per-example clipping and noise, Poisson batches) trains a copy of the model whose GRU is
Opacus's DPGRU (the same function and state dict, with per-example gradients; nn.GRU's fused kernel has none), on
the mean over the batch of each text's summed next-character loss divided by the tokeniser's public length cap: a
text's gradient then depends on that text alone (the undefended loss, a mean over the batch's characters, divides
by the batch's character count), and a text weighs by its characters as it does undefended, so a short canary
weighs no more under DP-SGD than without it. The trained weights are copied back into the model.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from modelinv.errors import ModelinvError
from modelinv.models.trainer import TrainConfig, TrainingHooks, shuffled_batches, train_epochs

SECRET = re.compile(r"^(.*?)(\d+)$", re.S)
"""A canary's text: its prefix, then its secret of digits at the end."""


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


def split_secret(text: str) -> tuple[str, str]:
    """(prefix, secret) of a canary's text: the secret is its trailing run of digits.

    Example: split_secret("my pin code is 0123") -> ("my pin code is ", "0123")
    """
    match = SECRET.match(text)
    if match is None:
        raise ModelinvError(f"canary {text!r} does not end in a secret of digits")
    return match.group(1), match.group(2)


def make_canaries(prefix: str, digits: int, repetitions: list[int], per_count: int, references: int, seed: int) -> list[Canary]:
    """`per_count` canaries for each repetition count and `references` never inserted, distinct secrets drawn
    uniformly from the 10^digits candidates with a generator seeded by `seed`. A `prefix` holding `{i}` is each
    canary's own: `{i}` is replaced by the canary's index (0, 1, ...; the never-inserted ones last).

    Example: make_canaries("my pin code is ", 4, [1, 16], 1, 2, 0) -> 4 canaries, repetitions 1, 16, 0, 0;
    make_canaries("pin {i} is ", 4, [16], 1, 1, 0) -> texts "pin 0 is ..." (inserted 16 times), "pin 1 is ..." (never)
    """
    counts = [r for r in repetitions for _ in range(per_count)] + [0] * references
    if prefix.replace("{i}", "0")[-1:].isdigit():
        raise ModelinvError(f"a canary prefix must not end in a digit (its secret's digits follow it): {prefix!r}")
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
    return [Canary(prefix.replace("{i}", str(i)) + s, s, r) for i, (s, r) in enumerate(zip(secrets, counts))]


def per_example_copy(model: CharLM) -> CharLM:
    """A copy of `model` whose GRU is Opacus's DPGRU: the same function and state dict, built from linear layers
    whose per-example gradients Opacus computes (DP-SGD cannot train nn.GRU)."""
    from opacus.layers import DPGRU  # as modelinv.defenses.dp_sgd: Opacus is imported where it is used (seconds to import)

    gru = model.rnn
    twin = copy.deepcopy(model)
    twin.rnn = DPGRU(gru.input_size, gru.hidden_size, gru.num_layers, batch_first=True)
    twin.rnn.load_state_dict(gru.state_dict())
    return twin


def lm_loss(model: nn.Module, ids: torch.Tensor, per_example_length: int | None = None) -> torch.Tensor:
    """Teacher-forced next-character cross-entropy (nats) of the sequences `ids` (B, T) (BOS .. EOS, pad 0), cut to
    the batch's longest: the mean over every character of the batch, or, given `per_example_length` (a public
    constant: the tokeniser's length cap), the mean over the texts of each text's summed loss divided by it, so that
    a text's gradient does not depend on the other texts of its batch (DP-SGD)."""
    x = ids[:, : int((ids != 0).sum(1).max())]
    logits = model(x[:, :-1])
    if per_example_length is None:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), ignore_index=0)
    each = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], ignore_index=0, reduction="none")
    return (each.sum(1) / per_example_length).mean()  # padding targets (id 0) are ignored: their loss is 0


def train_lm(
    model: CharLM, ids: torch.Tensor, train: TrainConfig, gen: torch.Generator, hooks: TrainingHooks | None = None, max_length: int = 256
) -> dict[str, float]:
    """Teacher-forced next-character cross-entropy on the sequences `ids` (N, T) (BOS .. EOS, pad 0) with the one
    training loop (`train_epochs`): Adam with a per-step cosine schedule over `train.epochs` epochs of batches of
    `train.batch_size`. Without `hooks`, the gradient is clipped to norm 1; a training defense's `hooks` (DP-SGD)
    wrap the optimiser and draw the batches instead, on a per-example copy of the model with each text's loss over
    `max_length`, the tokeniser's public length cap (module docstring). Returns the last epoch's training loss in
    bits per character (under a training defense, the mean per-text loss rescaled by the mean characters per text)
    and the defense's metrics (epsilon for DP-SGD)."""
    net = model if hooks is None else per_example_copy(model)
    adam = torch.optim.Adam(net.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(adam, max(train.epochs * -(-len(ids) // train.batch_size), 1))
    if hooks is None:

        def clip(*_) -> None:
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)

        adam.register_step_pre_hook(clip)
        optimiser, batches = adam, shuffled_batches
    else:
        optimiser, batches = hooks.setup(net, adam, len(ids), train), hooks.batches
    net.train()
    mean = float("nan")
    length = None if hooks is None else max_length
    for mean in train_epochs(lambda idx: lm_loss(net, ids[idx], length), optimiser, len(ids), train.epochs, train.batch_size, gen, batches=batches, after_step=schedule.step):
        pass
    if hooks is not None:  # the mean of the per-text losses, in nats per character
        mean *= max_length / float((ids[:, 1:] != 0).sum(1).double().mean())
    extra = {} if hooks is None else hooks.finish(net)
    if net is not model:  # child by child: DPGRU gives nn.GRU's keys from its own state_dict only, not as a child
        for name, child in model.named_children():
            child.load_state_dict(getattr(net, name).state_dict())
    model.eval()
    return {"train_bits_per_char": mean / float(torch.log(torch.tensor(2.0))), **extra}


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
