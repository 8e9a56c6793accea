"""Training-data extraction by decoding (Carlini et al., "Extracting Training Data from Large Language Models",
USENIX Security 2021; "The Secret Sharer", USENIX Security 2019, whose extraction searches the candidates in order of
log-perplexity): give the language model the prefix of a secret it was trained on and let it complete it, then
check whether the completion is the secret.

For a canary s[r] = prefix + r whose secret r has L characters from an alphabet A (the format, known to the
attacker as in the exposure test: here the digits), the attacker searches the completion the model finds most likely,

    r* = argmax_{r' in A^L} log Pr(r' | prefix) = argmax sum_{i=1..L} log Pr(r'_i | prefix, r'_<i),

which has the least log-perplexity Px(s[r']) among all candidates (Carlini et al. 2019, Def. 1), by

- greedy decoding (`beam_width` 1): r'_i = argmax_{a in A} Pr(a | prefix, r'_<i), one character at a time;
- beam search (`beam_width` B > 1): after each character keep the B partial completions of highest
  sum of log Pr (ties: the earlier candidate), and answer the best of the B complete ones. With B >= |A|^(L-1) it
  finds r* exactly (the secret of exposure rank 1); a smaller B may miss it.

Log-probabilities are the model's over its whole vocabulary, read from the next-character logits the oracle
returns (access.observe: logits); a character outside A is never chosen. An extraction succeeds when r* is the
inserted secret exactly (`modelinv.metrics.extraction`). Canaries sharing one prefix (the Secret Sharer's single
format) share one completion, so at most one of them can be extracted; a prefix of each canary's own (`{i}` in
`target.args.canary_prefix`) is the setting of Carlini et al. 2021, where every training example's own prefix is
decoded. Never-inserted canaries of the same format are the reference: their secret is found by chance only
(probability 1/|A|^L).

The attack's output is each canary as recovered: its prefix followed by r* (token ids, the shape of the canaries),
compared with the true canaries by the metrics; `attack_details.guesses` holds each r* as text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from modelinv.attacks.base import Attack, AttackParams, Reconstruction, Targets
from modelinv.attacks.registry import ATTACKS
from modelinv.attacks.text import texts_of
from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError
from modelinv.oracle import ThreatModel
from modelinv.text.lm import split_secret


class ExtractionParams(AttackParams):
    beam_width: int = Field(8, ge=1, description="partial completions kept after each character; 1 is greedy decoding")
    alphabet: str = Field("0123456789", min_length=1, description="the characters a secret is made of (the canary format's, known to the attacker)")


def beam_search(threat: ThreatModel, prefixes: torch.Tensor, length: int, allowed: torch.Tensor, width: int) -> torch.Tensor:
    """The most likely completion of `length` tokens from `allowed` after each prefix, by beam search of `width`.

    Shape: prefixes (G, P) int64 token ids (BOS first, all of length P), allowed (A,) -> completions (G, length).
    Every step queries the oracle once with the G x K partial sequences (K <= width beams each).
    """
    groups = len(prefixes)
    seqs = prefixes.unsqueeze(1)  # (G, K, P + t)
    scores = torch.zeros(groups, 1, dtype=torch.float64)
    for _ in range(length):
        k, t = seqs.shape[1], seqs.shape[2]
        logits = threat.observer(seqs.reshape(groups * k, t))[:, -1].cpu().double()
        step = F.log_softmax(logits, dim=-1)[:, allowed].reshape(groups, k, len(allowed))
        total = (scores.unsqueeze(-1) + step).reshape(groups, -1)  # (G, K * A), candidate j = beam j // A, character j % A
        order = total.sort(dim=1, descending=True, stable=True).indices[:, :width]
        beam, char = order // len(allowed), order % len(allowed)
        seqs = torch.cat([seqs.gather(1, beam.unsqueeze(-1).expand(-1, -1, t)), allowed[char].unsqueeze(-1)], dim=2)
        scores = total.gather(1, order)
    return seqs[:, 0, prefixes.shape[1] :]


@ATTACKS.register("extraction")
class Extraction(Attack):
    """Extract inserted secrets by greedy or beam-search decoding from their prefix (Carlini et al. 2021)."""

    goal = "extraction"
    observes = frozenset({"logits"})
    queries = True
    Params = ExtractionParams

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        if targets.records is None or targets.classes is None:
            raise ModelinvError(f"attack '{self.name}' decodes inserted canaries: run it on a language model target (char-lm)")
        tokenizer = texts_of(self.name, attacker_data).tokenizer
        missing = sorted(set(self.params.alphabet) - set(tokenizer.index))
        if missing:
            raise ModelinvError(f"attack '{self.name}': alphabet characters {missing} are not in the target's vocabulary")
        allowed = torch.tensor([tokenizer.index[c] for c in dict.fromkeys(self.params.alphabet)])
        canaries = [split_secret(text) for text in tokenizer.decode(targets.records)]
        formats: dict[tuple[str, int], list[int]] = {}
        for i, (prefix, secret) in enumerate(canaries):
            formats.setdefault((prefix, len(secret)), []).append(i)
        by_shape: dict[tuple[int, int], list[tuple[str, int]]] = {}  # prefixes of one token length and one secret length decode together
        for prefix, length in formats:
            by_shape.setdefault((len(tokenizer.ids(prefix)), length), []).append((prefix, length))
        guesses: list[str] = [""] * len(canaries)
        recovered = targets.records.clone()
        for (_, length), group in sorted(by_shape.items()):
            prefix_ids = tokenizer.encode([prefix for prefix, _ in group])
            completions = beam_search(threat, prefix_ids, length, allowed, self.params.beam_width)
            for (prefix, _), ids in zip(group, completions):
                text = tokenizer.decode(ids.unsqueeze(0))[0]
                start = prefix_ids.shape[1]
                for i in formats[(prefix, length)]:
                    guesses[i] = text
                    recovered[i, start : start + length] = ids
        meta = {"guesses": guesses, "prefixes": len(formats), "beam_width": self.params.beam_width}
        return Reconstruction(images=recovered, meta=meta)
