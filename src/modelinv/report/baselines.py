"""The trivial answer each result is judged against: what an attacker gets without the model.

Image goals: the attacker's mean image for every target (experiment.runner.trivial_answers), stored in each
row's `baselines`; attributes: the most common value of the sensitive column; text goals: the answers of
experiment.text (the attacker's most frequent words, its class prior, the canaries never inserted)."""

from __future__ import annotations

from typing import Any

TRIVIAL = "mean-public"
"""The trivial answer of image attacks shown beside the attack (see experiment.runner.trivial_answers)."""

TRIVIAL_BY_GOAL = {"bag-of-words": "most-frequent-words", "text-attribute": "prior", "memorization": "never-inserted"}
"""The trivial answer of the text goals (experiment.text): the attacker's most frequent words, the attacker's
class prior, and the canaries never inserted. Every other goal: TRIVIAL."""


def trivial(row: dict[str, Any], metric: str) -> float | None:
    """The row's trivial answer scored by `metric`: its stored baseline, or for attribute attacks the majority guess."""
    if metric == "attr_acc":
        return row.get("attr_baseline_acc")
    if metric == "attr_advantage":
        return 0.0
    value = ((row.get("baselines") or {}).get(TRIVIAL_BY_GOAL.get(row.get("goal"), TRIVIAL)) or {}).get(metric)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
