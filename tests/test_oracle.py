"""Oracles: what each access level returns, query counting, budgets, refusal of weaker threat models."""

import pytest
import torch

from modelinv.errors import AccessDenied, QueryBudgetExceeded
from modelinv.models import build_model
from modelinv.oracle import Features, Scores, ThreatModel, WhiteBox


@pytest.fixture()
def net():
    torch.manual_seed(0)
    return build_model("lenet", (1, 28, 28), 10).eval()


def test_features_scores_and_counting(net):
    x = torch.rand(5, 1, 28, 28)
    features = Features(net, "relu2")
    assert torch.allclose(features(x), net.features(x, "relu2"))
    assert features.queries == 5
    features.intercept(x)
    assert features.queries == 5, "the victim's own traffic is not an attacker query"
    probs = Scores(net, "probs")(x)
    assert torch.allclose(probs.sum(1), torch.ones(5))
    labels = Scores(net, "label")(x)
    assert labels.dtype == torch.long and labels.shape == (5,)
    assert not features(x).requires_grad


def test_budget_stops_queries(net):
    oracle = Scores(net, "probs", budget=8)
    oracle(torch.rand(6, 1, 28, 28))
    with pytest.raises(QueryBudgetExceeded, match="8 allowed, 6 used, 3 more"):
        oracle(torch.rand(3, 1, 28, 28))
    assert oracle.queries == 6


def test_white_box_client_covers_only_the_client(net):
    client = WhiteBox(net, "client", "relu2")
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    client.features(x, "relu2").sum().backward()
    assert x.grad is not None and client.queries == 2
    with pytest.raises(AccessDenied, match="does not cover layer 'fc1'"):
        client.features(x, "fc1")
    with pytest.raises(AccessDenied):
        WhiteBox(net, "server", "relu2").features(x, "relu2")


def test_threat_model_requirements(net):
    labels_only = ThreatModel(observer=Scores(net, "label"))
    with pytest.raises(AccessDenied, match="needs to observe features or probs; the threat model grants label"):
        labels_only.require("x", frozenset({"features", "probs"}), frozenset())
    ThreatModel(observer=Scores(net, "logits")).require("x", frozenset({"probs"}), frozenset())
    features_only = ThreatModel(observer=Features(net, "conv1"))
    with pytest.raises(AccessDenied, match="white-box access to the client model"):
        features_only.require("rmle", frozenset({"features"}), frozenset({"client"}))
    full = ThreatModel(observer=Features(net, "conv1"), white_box=WhiteBox(net, "full"))
    full.require("rmle", frozenset({"features"}), frozenset({"client"}))
