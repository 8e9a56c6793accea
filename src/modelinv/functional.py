"""Fitted functions shared by layers that may not import each other: attacks (the inverse attribute model)
and metrics (the ideal predictor of `attr_ideal_acc`) fit the same learner."""

from __future__ import annotations

from collections.abc import Callable

import torch


def fit_predictor(features: torch.Tensor, values: torch.Tensor, C: float = 1.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A multinomial logistic regression (scikit-learn, L-BFGS, deterministic) from standardised `features` to `values`."""
    from sklearn.linear_model import LogisticRegression

    mean, std = features.mean(0), features.std(0).clamp_min(1e-8)
    classes = values.unique()
    if len(classes) == 1:
        return lambda x: classes.expand(len(x))
    fitted = LogisticRegression(C=C, max_iter=1000).fit(((features - mean) / std).double().numpy(), values.numpy())
    return lambda x: torch.from_numpy(fitted.predict(((x - mean) / std).double().numpy())).long()
