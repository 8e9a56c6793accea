"""Name recovery from a sentence embedding: which of a list of candidate names is in an embedded personal record,
by re-embedding the attacker's own records with each candidate filled in (Song & Raghunathan, "Information Leakage
in Embedding Models", CCS 2020, sec. 5, attribute inference with the candidate values known; here with no labelled
victims at all, only the embedding model as an oracle).

The attacker holds public records x_1..x_m of the same form (its own, whose names it knows), a public candidate list
C (here the first or last names of faker's en_US provider: every generated name is in it), and the victim's
embedding e = Phi(x). For each candidate c it fills c into the name slot of each probe record, t_j(c), queries
Phi, and takes the candidate's direction as its offset from the average candidate,

    d(c) = (1/m) sum_j Phi(t_j(c))  -  (1/(m |C|)) sum_j sum_{c'} Phi(t_j(c')),

and the victim's as its offset from the attacker's records, v = e - (1/n_a) sum_a Phi(x_a). Candidates are ranked
by cosine similarity,

    score(c | e) = <d(c), v> / (||d(c)|| ||v||),

the offsets removing what every record shares, so that what remains of v is what its own words add. Queries:
m |C| probes and the attacker's n_a records, shared by all victims. Judged against the trivial answer of ranking
names by how often they occur in the attacker's records (the runner's `prior`), by top-1 / top-5 accuracy.
A target whose vocabulary lacks a name (a word tokeniser's unknown token) embeds all such candidates alike: they
tie, and the attack cannot tell them apart.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from modelinv.attacks.base import Attack, AttackParams, Reconstruction, Targets
from modelinv.attacks.registry import ATTACKS
from modelinv.attacks.text import embeddings_of, texts_of
from modelinv.data.text import candidate_names, with_name
from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError
from modelinv.oracle import ThreatModel


class NameRecoveryParams(AttackParams):
    field: Literal["first_name", "last_name"] = Field("first_name", description="the name guessed: first or last")
    probes: int = Field(4, ge=1, description="attacker records each candidate is filled into (m)")
    batch_size: int = Field(512, ge=1, description="texts per oracle call")


@ATTACKS.register("name-recovery")
class NameRecovery(Attack):
    """Rank candidate names for embedded records by similarity with the attacker's records re-embedded with each name (Song & Raghunathan 2020, sec. 5)."""

    goal = "text-attribute"
    observes = frozenset({"features"})
    queries = True
    Params = NameRecoveryParams

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        seen = embeddings_of(self.name, targets).double()
        public = texts_of(self.name, attacker_data)
        p = self.params
        names = public.attributes.get("first_name"), public.attributes.get("last_name")
        if names[0] is None or names[1] is None:
            raise ModelinvError(f"attack '{self.name}' fills names into the attacker's own records: its texts must be records (first_name, last_name attributes)")
        candidates = candidate_names(p.field)
        picks = torch.randperm(len(public), generator=gen)[: p.probes].tolist()
        probes = [with_name(public.texts[j], names[0][j], names[1][j], c, p.field) for j in picks for c in candidates]
        embed = lambda texts: torch.cat([threat.observer(public.tokenizer.encode(texts[i : i + p.batch_size])).double() for i in range(0, len(texts), p.batch_size)])  # noqa: E731
        probe = embed(probes).reshape(len(picks), len(candidates), -1).mean(0)
        directions = probe - probe.mean(0)
        victims = seen - embed(list(public.texts)).mean(0)
        scores = F.normalize(victims, dim=1) @ F.normalize(directions, dim=1).T
        return Reconstruction(images=scores.float(), meta={"candidates": list(candidates), "field": p.field, "probes": len(picks)})
