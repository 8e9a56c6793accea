"""The trivial answer each result is judged against: what an attacker gets without the model.

Image goals: the attacker's mean image for every target (experiment.runner.trivial_answers), stored in each
row's `baselines`; attributes: the most common value of the sensitive column; text goals: the answers of
experiment.text (the attacker's most frequent words, its class prior, the canaries never inserted). Which
stored baseline judges a goal is declared once, in attacks.goals (`Goal.trivial`)."""

from __future__ import annotations

from typing import Any

from modelinv.attacks.goals import GOALS

TRIVIAL = GOALS["reconstruct"].trivial
"""The trivial answer of image attacks shown beside the attack (see experiment.runner.trivial_answers)."""


def trivial(row: dict[str, Any], metric: str) -> float | None:
    """The row's trivial answer scored by `metric`: its stored baseline, or for attribute attacks the majority guess."""
    if metric == "attr_acc":
        return row.get("attr_baseline_acc")
    if metric == "attr_advantage":
        return 0.0
    name = GOALS[row["goal"]].trivial if row.get("goal") in GOALS else TRIVIAL  # each goal declares its trivial answer
    value = ((row.get("baselines") or {}).get(name) or {}).get(metric)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
