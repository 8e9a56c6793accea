"""A synthetic table with a planted dependency of known strength between a sensitive attribute and the label.

    planted:STRENGTH     e.g. planted:0 (the label ignores the sensitive value), planted:2

4,000 records, drawn from one fixed seed so that every strength shares the same features: four standard
normal features x1..x4 and a sensitive level s in (low, mid, high) with prior (0.5, 0.3, 0.2), independent
of them. The label is Bernoulli(sigmoid(1.5 (x1 + x2/2 - x3/2) + STRENGTH z)), z the standardised level
index: STRENGTH sets how much the label, hence a model of it, reveals of s.
"""

from __future__ import annotations

import math

import torch

from modelinv.data.files import FILE_SOURCES
from modelinv.data.schema import SensitiveAttribute
from modelinv.data.types import TabularDataset
from modelinv.errors import ModelinvError

ROWS, SEED = 4000, 1234
LEVELS, PRIOR = ("low", "mid", "high"), (0.5, 0.3, 0.2)


@FILE_SOURCES.register("planted", kind="tabular", usage="planted:STRENGTH", options=())
def planted(spec: str) -> TabularDataset:
    """Synthetic records whose label depends on a sensitive level with the given strength (0: not at all)."""
    try:
        strength = float(spec)
    except ValueError:
        raise ModelinvError(f"planted:STRENGTH needs a number, got '{spec}'") from None
    if not math.isfinite(strength):
        raise ModelinvError(f"planted:STRENGTH needs a finite number, got '{spec}'")
    gen = torch.Generator().manual_seed(SEED)
    features = torch.randn(ROWS, 4, generator=gen)
    s = torch.multinomial(torch.tensor(PRIOR), ROWS, replacement=True, generator=gen).float()
    values = torch.arange(len(LEVELS), dtype=torch.float32)
    mean = float((torch.tensor(PRIOR) * values).sum())
    std = float((torch.tensor(PRIOR) * (values - mean) ** 2).sum().sqrt())
    logit = 1.5 * (features[:, 0] + features[:, 1] / 2 - features[:, 2] / 2) + strength * (s - mean) / std
    y = (torch.rand(ROWS, generator=gen) < torch.sigmoid(logit)).long()
    return TabularDataset(
        x=torch.cat([features, s.unsqueeze(1)], dim=1),
        y=y,
        classes=("0", "1"),
        name=f"planted:{strength:g}",
        columns=("x1", "x2", "x3", "x4", "s"),
        levels={"s": LEVELS},
        sensitive=SensitiveAttribute("s", 4, LEVELS),
    )
