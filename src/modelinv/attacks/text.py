"""What the text attacks (bow-inversion, text-attribute, canary-exposure) share: the attacker's texts as a target
tokenised them, and the victims' embeddings."""

from __future__ import annotations

import torch

from modelinv.attacks.base import Targets
from modelinv.data.text import TextDataset
from modelinv.data.types import Dataset
from modelinv.errors import AccessDenied, ModelinvError


def texts_of(attack: str, data: Dataset) -> TextDataset:
    """The attacker's texts, tokenised by the target's tokeniser, or an error naming the attack."""
    if not isinstance(data, TextDataset) or data.tokenizer is None:
        raise ModelinvError(f"attack '{attack}' needs the attacker's texts tokenised by the target: run it on a text target (text-encoder, minilm, char-lm)")
    return data


def embeddings_of(attack: str, targets: Targets) -> torch.Tensor:
    """The victims' sentence embeddings as the attacker saw them (N, D)."""
    if targets.observations is None or targets.observations.dim() != 2:
        raise AccessDenied(f"attack '{attack}' inverts sentence embeddings: set access.observe to features on a sentence encoder")
    return targets.observations.float()
