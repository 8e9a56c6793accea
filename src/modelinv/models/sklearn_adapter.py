"""scikit-learn targets behind the same oracles as torch models: `sk-logreg` and `sk-tree`.

Each is fitted by scikit-learn (deterministically from the seed), then its fitted arrays are copied into a
torch module, so the `Scores` oracle, output defenses and the checkpoint store treat it as any other model
and nothing is pickled: `sk-logreg` becomes a `logreg` network (white-box: exact scores and gradients);
`sk-tree` becomes a `DecisionTree` module holding the tree's arrays as buffers, whose forward pass walks the
tree exactly as scikit-learn does (white-box: exact scores, no gradients). Its logits are the log leaf
frequencies. Training-time defenses (DP-SGD, MID, ...) need gradient training and are refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError
from modelinv.models.layered import LayeredNet
from modelinv.models.registry import MODELS, build_model
from modelinv.models.store import ModelRequest, cached, train_or_load
from modelinv.models.tabular import TabularNet, _tabular
from modelinv.models.trainer import TrainingHooks, accuracy

FITTED_BY = "scikit-learn"
MIN_PROB = 1e-6
"""Leaf frequencies are clamped to this before the log, so a pure leaf gives finite logits."""


class SklearnLogreg(TabularNet):
    """Logistic regression fitted by scikit-learn (L-BFGS) on standardised columns, run as a `logreg` network."""

    sklearn_params: dict[str, Any]

    def fit_sklearn(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
        from sklearn.linear_model import LogisticRegression

        self.fit_inputs(x)
        linear = self.stages["fc1"][1]
        num_classes = linear.out_features
        z = ((x - self.input_mean) / self.input_std).flatten(1).double().numpy()
        fitted = LogisticRegression(max_iter=1000, random_state=seed, **self.sklearn_params).fit(z, y.numpy())
        coef, intercept = fitted.coef_, fitted.intercept_
        if num_classes == 2:  # scikit-learn keeps one row for two classes: logit(class 1) - logit(class 0)
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
        elif len(fitted.classes_) != num_classes:
            raise ModelinvError(f"model 'sk-logreg' saw {len(fitted.classes_)} of the {num_classes} classes in its training data")
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(coef))
            linear.bias.copy_(torch.from_numpy(intercept))


class DecisionTree(nn.Module):
    """A fitted decision tree as buffers: node feature, threshold, children, and log class frequency per node."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.register_buffer("feature", torch.zeros(1, dtype=torch.int64))
        self.register_buffer("threshold", torch.zeros(1, dtype=torch.float64))
        self.register_buffer("left", torch.full((1,), -1, dtype=torch.int64))
        self.register_buffer("right", torch.full((1,), -1, dtype=torch.int64))
        self.register_buffer("log_probs", torch.full((1, num_classes), -float(np.log(num_classes))))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in self._buffers:  # a fitted tree has as many nodes as it has; take the stored sizes
            if prefix + name in state_dict:
                self._buffers[name] = torch.empty_like(state_dict[prefix + name])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log leaf frequencies; a row goes left where x[feature] <= threshold (compared in float64, as scikit-learn)."""
        rows = x.flatten(1).double()
        node = torch.zeros(len(rows), dtype=torch.int64, device=rows.device)
        inner = self.left[node] >= 0
        while bool(inner.any()):
            f = self.feature[node].clamp_min(0)
            go_left = rows.gather(1, f.unsqueeze(1)).squeeze(1) <= self.threshold[node]
            node = torch.where(inner, torch.where(go_left, self.left[node], self.right[node]), node)
            inner = self.left[node] >= 0
        return self.log_probs[node]


class SklearnTree(LayeredNet):
    """A scikit-learn decision tree (CART) as a one-stage network named `tree`."""

    def __init__(self, num_classes: int, **sklearn_params: Any):
        super().__init__([("tree", DecisionTree(num_classes))], embedding_layer="tree", mean=0.0, std=1.0)
        self.sklearn_params = sklearn_params

    def fit_sklearn(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
        from sklearn.tree import DecisionTreeClassifier

        fitted = DecisionTreeClassifier(random_state=seed, **self.sklearn_params).fit(x.flatten(1).numpy(), y.numpy())
        tree, stage = fitted.tree_, self.stages["tree"]
        counts = np.zeros((tree.node_count, stage.log_probs.shape[1]))
        counts[:, fitted.classes_] = tree.value[:, 0, :]
        probs = counts / counts.sum(1, keepdims=True)
        stage.feature = torch.from_numpy(tree.feature.astype(np.int64))
        stage.threshold = torch.from_numpy(tree.threshold.astype(np.float64))
        stage.left = torch.from_numpy(tree.children_left.astype(np.int64))
        stage.right = torch.from_numpy(tree.children_right.astype(np.int64))
        stage.log_probs = torch.from_numpy(np.log(np.clip(probs, MIN_PROB, None))).float()


@MODELS.register("sk-logreg", family="image-or-tabular", fitted_by=FITTED_BY)
def sk_logreg(input_shape, num_classes, C: float = 1.0) -> SklearnLogreg:
    """scikit-learn LogisticRegression (L2, inverse strength C) on standardised columns; white-box as `logreg`."""
    net = _tabular(input_shape, num_classes, (), cls=SklearnLogreg)
    net.sklearn_params = {"C": C}
    return net


@MODELS.register("sk-tree", family="image-or-tabular", fitted_by=FITTED_BY)
def sk_tree(input_shape, num_classes, max_depth: int = 6, min_samples_leaf: int = 5) -> SklearnTree:
    """scikit-learn DecisionTreeClassifier (CART, Gini) of at most max_depth levels; scores are leaf frequencies."""
    return SklearnTree(num_classes, max_depth=max_depth, min_samples_leaf=min_samples_leaf)


def fit_or_load(request: ModelRequest, data: Dataset, test: Dataset | None = None) -> tuple[LayeredNet, dict[str, Any]]:
    """The scikit-learn model `request` describes: from the cache, else fitted on `data` (its arrays stored as safetensors)."""
    if request.defense:
        raise ModelinvError(f"defense '{request.defense['name']}' changes gradient training; model '{request.arch}' is fitted by scikit-learn")

    def produce():
        model = build_model(request.arch, request.input_shape, request.num_classes, **request.args)
        model.fit_sklearn(data.x, data.y, request.seed)
        metrics = {"train_acc": accuracy(model, data)}
        if test is not None:
            metrics["test_acc"] = accuracy(model, test)
        return {"model": model}, metrics

    modules, meta = cached(request, produce)
    return modules["model"], {**meta, "path": f"{meta['path']}/model"}


def train_or_fit(
    request: ModelRequest, data: Dataset, test: Dataset | None = None, hooks: TrainingHooks | None = None
) -> tuple[LayeredNet, dict[str, Any]]:
    """A torch model trained by gradient, or a scikit-learn model fitted, as the architecture requires; cached.

    `hooks` is the training-time defense `request.defense` records (the defense object; see `train_or_load`)."""
    if MODELS.info(request.arch).get("fitted_by") == FITTED_BY:
        return fit_or_load(request, data, test=test)
    return train_or_load(request, data, test=test, hooks=hooks)
