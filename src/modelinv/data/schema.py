"""The schema of a tabular dataset for attribute inference: which column is sensitive, which columns are
categorical and their declared levels, and the bins a numeric sensitive column is discretised into.

`apply_schema(data, schema)` checks the schema against the table (every error names the column) and
returns the table with categorical columns indexed in the declared level order and the `SensitiveAttribute`
attached. The model still sees a numeric sensitive column as a number; attacks guess its bin.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from pydantic import BaseModel, ConfigDict, Field

from modelinv.data.sensitive import SensitiveAttribute
from modelinv.data.types import TabularDataset
from modelinv.errors import ModelinvError

__all__ = ["SensitiveAttribute", "TabularSchema", "apply_schema", "sensitive_of"]


class TabularSchema(BaseModel):
    """`data.tabular` of a config: the sensitive column, categorical levels, bins of a numeric sensitive column."""

    model_config = ConfigDict(extra="forbid")

    sensitive: str = Field(description="the column an attribute-inference attack guesses")
    categorical: dict[str, list[str]] = Field(default_factory=dict, description="column -> its levels, in order")
    bins: list[float] | None = Field(None, description="edges of the bins of a numeric sensitive column (at least 3)")
    positive: str | None = Field(None, description="the sensitive level precision and recall are measured on; default: the last level")


def _bin_names(edges: list[float]) -> tuple[str, ...]:
    return tuple(f"[{a:g}, {b:g})" if i < len(edges) - 2 else f"[{a:g}, {b:g}]" for i, (a, b) in enumerate(zip(edges, edges[1:])))


def _index_levels(data: TabularDataset, column: str, declared: list[str]) -> torch.Tensor:
    """The column as indices into `declared`; an error names the column and the first undeclared value.

    A column read as text holds indices into its found levels; a numeric one is matched to numeric level names."""
    j = data.columns.index(column)
    if column in data.levels:
        found, codes = data.levels[column], data.x[:, j].long()
    else:
        distinct, codes = data.x[:, j].unique(return_inverse=True)
        by_value = {}
        for level in declared:
            try:
                by_value.setdefault(float(level), level)
            except ValueError:
                continue
        found = tuple(by_value.get(v, f"{v:g}") for v in distinct.tolist())
    undeclared = [name for name in found if name not in declared]
    if undeclared:
        raise ModelinvError(f"data.tabular.categorical.{column}: value '{undeclared[0]}' of column '{column}' is not a declared level ({', '.join(declared)})")
    remap = torch.tensor([declared.index(name) for name in found], dtype=torch.float32)
    return remap[codes]


def apply_schema(data: TabularDataset, schema: TabularSchema) -> TabularDataset:
    """`data` with its categorical columns indexed by the declared levels and its sensitive attribute attached."""
    if not isinstance(data, TabularDataset):
        raise ModelinvError(f"data.tabular applies to tabular data, but {data.name} holds images")
    known = ", ".join(data.columns)
    for column in [schema.sensitive, *schema.categorical]:
        if column not in data.columns:
            where = "sensitive" if column == schema.sensitive else f"categorical.{column}"
            raise ModelinvError(f"data.tabular.{where}: {data.name} has no column '{column}' (columns: {known})")
    undeclared = [c for c in data.levels if c not in schema.categorical]
    if undeclared:
        c = undeclared[0]
        raise ModelinvError(f"data.tabular.categorical: column '{c}' of {data.name} is categorical ({', '.join(data.levels[c])}); declare its levels")
    for column, declared in schema.categorical.items():
        if len(declared) < 1 or len(set(declared)) != len(declared):
            raise ModelinvError(f"data.tabular.categorical.{column}: levels must be distinct and at least one, got {declared}")
    x = data.x.clone()
    for column, declared in schema.categorical.items():
        x[:, data.columns.index(column)] = _index_levels(data, column, declared)
    levels = {**data.levels, **{c: tuple(v) for c, v in schema.categorical.items()}}
    index = data.columns.index(schema.sensitive)
    if schema.sensitive in schema.categorical:
        if schema.bins is not None:
            raise ModelinvError(f"data.tabular.bins: the sensitive column '{schema.sensitive}' is categorical; bins apply to a numeric one")
        names, edges = levels[schema.sensitive], None
    else:
        edges = schema.bins
        if edges is None:
            raise ModelinvError(f"data.tabular.bins: the sensitive column '{schema.sensitive}' is numeric; declare the edges of its bins, or its levels in data.tabular.categorical")
        if len(edges) < 3 or any(not math.isfinite(e) for e in edges) or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ModelinvError(f"data.tabular.bins must be at least 3 finite, increasing edges (2 bins), got {edges}")
        column = x[:, index]
        outside = ((column < edges[0]) | (column > edges[-1])).nonzero().flatten()
        if len(outside):
            row = int(outside[0])
            raise ModelinvError(f"data.tabular.bins: column '{schema.sensitive}' has value {float(column[row]):g} at row {row + 1}, outside the bins [{edges[0]:g}, {edges[-1]:g}]")
        names = _bin_names(edges)
    positive = len(names) - 1
    if schema.positive is not None:
        if schema.positive not in names:
            raise ModelinvError(f"data.tabular.positive: '{schema.positive}' is not a level of '{schema.sensitive}' ({', '.join(names)})")
        positive = names.index(schema.positive)
    sensitive = SensitiveAttribute(schema.sensitive, index, tuple(names), None if edges is None else tuple(float(e) for e in edges), positive)
    return replace(data, x=x, levels=levels, sensitive=sensitive)


def sensitive_of(data) -> SensitiveAttribute:
    """The sensitive attribute of `data`, or an error saying how to declare one."""
    found = getattr(data, "sensitive", None)
    if found is None:
        raise ModelinvError(f"attribute inference needs a sensitive column: declare data.tabular.sensitive for {data.name}")
    return found
