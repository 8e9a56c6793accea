"""What an attacker may observe of a model: the one list of observation kinds, shared by the oracles
(modelinv.oracle), the output defenses that perturb them and the server that releases them."""

from __future__ import annotations

from typing import Literal, get_args

Observation = Literal["features", "logits", "probs", "label"]
"""Split-layer features f1(x), the logits, the softmax probabilities, or the top-1 label."""

OBSERVATIONS: tuple[Observation, ...] = get_args(Observation)
SCORES: tuple[Observation, ...] = tuple(o for o in OBSERVATIONS if o != "features")
"""The observations of the model's output (what `Scores` releases)."""
