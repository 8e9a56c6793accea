"""Split-inference attacks on a real (briefly trained) LeNet: each beats a trivial baseline, and refuses less access."""

import pytest
import torch

from modelinv.attacks import ATTACKS, Targets
from modelinv.errors import AccessDenied, ModelinvError, QueryBudgetExceeded
from modelinv.metrics import MetricInputs, compute
from modelinv.oracle import Features, ThreatModel, WhiteBox


def psnr(reconstructions, truth):
    return compute(["psnr"], MetricInputs(reconstructions, torch.zeros(len(truth), dtype=torch.long), truth=truth))["psnr"]


@pytest.fixture(scope="module")
def victims(mnist_splits):
    pick = torch.randperm(len(mnist_splits.private_test), generator=torch.Generator().manual_seed(1))[:8]
    return mnist_splits.private_test.x[pick]


@pytest.fixture(scope="module")
def public(mnist_splits):
    pick = torch.randperm(len(mnist_splits.public), generator=torch.Generator().manual_seed(2))[:1000]
    return mnist_splits.public.subset(pick)


@pytest.fixture(scope="module")
def mean_image_psnr(public, victims):
    """The trivial attacker: answer every observation with the mean public image."""
    return psnr(public.x.mean(0, keepdim=True).expand_as(victims), victims)


def attack(name, threat, victims, public, **params):
    return ATTACKS.get(name)(**params)(threat, Targets(threat.observer.intercept(victims)), public)


def test_rmle_recovers_inputs_from_a_shallow_cut(small_lenet, victims, public):
    threat = ThreatModel(observer=Features(small_lenet, "conv1"), white_box=WhiteBox(small_lenet, "client", "conv1"))
    result = attack("rmle", threat, victims, public)
    assert result.meta["iterations"] == 500 and result.meta["lr"] == 1e-2, "the paper's shallow schedule"
    assert psnr(result.images, victims) > 25
    assert result.meta["queries"] == 0 and result.meta["gradients"] == 500 * len(victims)
    # a shortened run reports the cut's schedule beside what it used, so a report can flag the reduction
    short = attack("rmle", threat, victims[:2], public, iterations=5)
    assert short.meta["iterations"] == 5 and short.meta["defaults"] == {"lr": 1e-2, "iterations": 500, "tv_weight": 0.0}


def test_inverse_net_beats_the_mean_image_by_3db(small_lenet, victims, public, mean_image_psnr):
    threat = ThreatModel(observer=Features(small_lenet, "relu2"))
    result = attack("inverse-net", threat, victims, public, epochs=25)
    assert psnr(result.images, victims) >= mean_image_psnr + 3
    assert result.meta["queries"] == len(public)


def test_inverse_net_decoders_are_cached_by_exactly_what_they_learn_from(small_lenet, victims, public):
    threat = ThreatModel(observer=Features(small_lenet, "relu2"))
    first = attack("inverse-net", threat, victims, public, epochs=2)
    again = attack("inverse-net", ThreatModel(observer=Features(small_lenet, "relu2")), victims, public, epochs=2)
    assert again.meta["decoder_cached"] and again.meta["decoder_path"] == first.meta["decoder_path"]
    assert torch.equal(again.images, first.images) and again.meta["train_loss"] == first.meta["train_loss"]
    assert again.meta["queries"] == first.meta["queries"] == len(public)  # the oracle is asked either way: the attack's cost
    # anything that changes what the decoder learns is another decoder: the parameters, the seed, the observations
    other_seed = ATTACKS.get("inverse-net")(epochs=2)(threat, Targets(threat.observer.intercept(victims)), public, seed=1)
    assert not attack("inverse-net", threat, victims, public, epochs=3).meta["decoder_cached"]
    assert not other_seed.meta["decoder_cached"]
    assert not attack("inverse-net", ThreatModel(observer=Features(small_lenet, "conv2")), victims, public, epochs=2).meta["decoder_cached"]


def test_inverse_net_from_probability_vectors_runs(small_lenet, victims, public):
    from modelinv.oracle import Scores

    result = attack("inverse-net", ThreatModel(observer=Scores(small_lenet, "probs")), victims, public, epochs=2)
    assert result.images.shape == victims.shape and result.meta["decoder"] == "VectorDecoder"


def test_shadow_model_needs_no_queries_and_beats_the_mean_image(small_lenet, victims, public, mean_image_psnr):
    threat = ThreatModel(observer=Features(small_lenet, "conv1"), white_box=WhiteBox(small_lenet, "server", "conv1"))
    result = attack("shadow", threat, victims, public)
    assert result.meta["queries"] == 0
    assert psnr(result.images, victims) >= mean_image_psnr + 3


def test_same_seed_same_reconstruction(small_lenet, victims, public):
    runs = [attack("inverse-net", ThreatModel(observer=Features(small_lenet, "relu2")), victims, public, epochs=1) for _ in range(2)]
    assert torch.equal(runs[0].images, runs[1].images)


def test_attacks_refuse_a_weaker_threat_model(small_lenet, victims, public):
    with pytest.raises(AccessDenied, match="'rmle' needs white-box access to the client"):
        attack("rmle", ThreatModel(observer=Features(small_lenet, "conv1")), victims, public)
    with pytest.raises(AccessDenied, match="'shadow' needs white-box access to the server"):
        attack("shadow", ThreatModel(observer=Features(small_lenet, "conv1")), victims, public)


def test_query_budget_is_enforced(small_lenet, victims, public):
    threat = ThreatModel(observer=Features(small_lenet, "relu2", budget=500))
    with pytest.raises(QueryBudgetExceeded, match="500 allowed"):
        attack("inverse-net", threat, victims, public, epochs=1)


def test_bad_attack_parameters_name_the_field():
    with pytest.raises(ModelinvError, match="unknown field 'attack.params.iteration'; did you mean 'iterations'"):
        ATTACKS.get("rmle")(iteration=3)
    with pytest.raises(ModelinvError, match="invalid 'attack.params.lr'"):
        ATTACKS.get("rmle")(lr=-1)


@pytest.fixture(scope="module")
def small_mlp(mnist_splits):
    from modelinv.models.store import ModelRequest, train_or_load

    data = mnist_splits.private_train
    request = ModelRequest(
        role="target", arch="mlp", input_shape=data.input_shape, num_classes=10,
        data_digest=data.digest(), seed=0, train={"epochs": 5},
    )
    return train_or_load(request, data)[0]


def test_mi_face_inversions_from_zeros_are_classified_as_their_class(small_mlp, public):
    """ART's behavioural test: all classes inverted in one batch, each recognised by the model as its class."""
    classes = torch.arange(10)
    threat = ThreatModel(white_box=WhiteBox(small_mlp, "full"))
    result = ATTACKS.get("mi-face")()(threat, Targets(classes=classes), public)
    assert result.images.shape == (10, 1, 28, 28) and result.images.min() >= 0 and result.images.max() <= 1
    assert torch.equal(small_mlp(result.images).argmax(1), classes)
    assert result.meta["gradients"] >= 10 * 2 * 100, "one batched optimisation over every class"
    with pytest.raises(AccessDenied, match="white-box access to the full model"):
        ATTACKS.get("mi-face")()(ThreatModel(observer=Features(small_mlp, "relu1")), Targets(classes=classes), public)
