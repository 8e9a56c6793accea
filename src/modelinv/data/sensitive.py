"""The sensitive attribute of a table: the column attribute-inference attacks guess. Kept apart from the
schema (modelinv.data.schema) so the dataset containers (modelinv.data.types) can hold it without a cycle."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SensitiveAttribute:
    """The sensitive column of a table: its position, its levels (or bin names), its bin edges if numeric, and the
    index of the `positive` level precision and recall are measured on (-1: the last)."""

    column: str
    index: int
    levels: tuple[str, ...]
    edges: tuple[float, ...] | None = None
    positive: int = -1

    @property
    def num_values(self) -> int:
        return len(self.levels)

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """The sensitive value of each row of `x` (N, D): a level index, or the bin a numeric value falls in."""
        column = x[:, self.index].contiguous()
        if self.edges is None:
            return column.round().long()
        inner = torch.tensor(self.edges[1:-1], dtype=column.dtype)
        return torch.bucketize(column, inner, right=True)

    def candidates(self, public: torch.Tensor) -> torch.Tensor:
        """The value written into the sensitive column for each guess: the level index, or for a bin the median
        of the attacker's public values in it (its midpoint when none falls there)."""
        if self.edges is None:
            return torch.arange(self.num_values, dtype=torch.float32)
        inside = self.values(public)
        column = public[:, self.index]
        return torch.tensor(
            [
                float(column[inside == k].median()) if bool((inside == k).any()) else (self.edges[k] + self.edges[k + 1]) / 2
                for k in range(self.num_values)
            ]
        )

    def hide(self, x: torch.Tensor) -> torch.Tensor:
        """Rows with the sensitive column unknown (NaN): what an attacker knows of a victim's record."""
        hidden = x.clone()
        hidden[:, self.index] = float("nan")
        return hidden

    def others(self, x: torch.Tensor) -> torch.Tensor:
        """The non-sensitive columns of `x`."""
        return torch.cat([x[:, : self.index], x[:, self.index + 1 :]], dim=1)

    def fill(self, records: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Every record with every value: (N, D) x (K,) -> (N, K, D)."""
        filled = records.unsqueeze(1).repeat(1, len(values), 1)
        filled[:, :, self.index] = values
        return filled
