"""What the attribute-inference attacks (fredrikson-attr, inverse-attr) share: the victims' records and
observations as the attacker holds them, and the completed records they return."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modelinv.attacks.base import Reconstruction, Targets
from modelinv.data.schema import SensitiveAttribute
from modelinv.errors import AccessDenied, ModelinvError


def records_of(attack: str, targets: Targets) -> torch.Tensor:
    """The private records to complete, or an error: the attack infers attributes, not inputs or classes."""
    if targets.records is None:
        raise ModelinvError(f"attack '{attack}' completes private records (its goal is 'attribute'): run it on tabular data with data.tabular")
    return targets.records


def observed(attack: str, targets: Targets) -> torch.Tensor:
    """The victims' outputs as the attacker saw them, or an error if it observes nothing."""
    if targets.observations is None:
        raise AccessDenied(f"attack '{attack}' uses the outputs of the victims' records: set access.observe to probs, logits or label")
    return targets.observations


def as_vectors(outputs: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Observations as float vectors (N, C): labels become one-hot, scores stay as they are."""
    return F.one_hot(outputs.long(), num_classes).float() if outputs.dim() == 1 else outputs.float()


def completed(records: torch.Tensor, sensitive: SensitiveAttribute, values: torch.Tensor, guess: torch.Tensor, **meta) -> Reconstruction:
    """The records with the guessed value (an index into `values`) written into the sensitive column."""
    rows = records.clone()
    rows[:, sensitive.index] = values[guess]
    return Reconstruction(images=rows, meta={"sensitive": sensitive.column, **meta})
