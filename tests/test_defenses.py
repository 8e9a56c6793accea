"""Defenses: the attacker observes the defended tensor, each defense lowers its attack's success against
the same model undefended, DP-SGD reports epsilon, bad parameters name their field, and `modelinv
tradeoff` writes its table and plot."""

import json

import pytest
import torch
import yaml

from helpers import cli
from modelinv.attacks import ATTACKS, Attack, Reconstruction, Targets
from modelinv.data import load, make_splits
from modelinv.defenses import build_defense
from modelinv.errors import ModelinvError
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.runner import build_threat, prepare, run_experiment
from modelinv.metrics import MetricInputs, compute
from modelinv.models.store import ModelRequest, train_or_load
from modelinv.models.trainer import accuracy
from modelinv.oracle import Features, Scores, ThreatModel, WhiteBox
from modelinv.results import ResultsStore
from modelinv.stats import distance_correlation


def psnr(reconstructions, truth):
    return compute(["psnr"], MetricInputs(reconstructions, torch.zeros(len(truth), dtype=torch.long), truth=truth))["psnr"]


def train(data, arch, epochs, defense=None):
    request = ModelRequest(
        role="target",
        arch=arch,
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        data_digest=data.digest(),
        seed=0,
        train={"epochs": epochs, "patience": epochs},
        defense=defense.training_spec() if defense else {},
    )
    return train_or_load(request, data, hooks=defense)


@pytest.fixture(scope="module")
def mnist(mnist_splits):
    """1,500 private MNIST images of all classes, 8 victims, 1,000 public images."""
    pick = torch.randperm(len(mnist_splits.private_train), generator=torch.Generator().manual_seed(0))[:1500]
    return mnist_splits.private_train.subset(pick), mnist_splits.private_test.x[::90][:8], mnist_splits.public.subset(torch.arange(1000))


@pytest.fixture(scope="module")
def lenet(mnist):
    return train(mnist[0], "lenet", 6)[0]


@pytest.fixture(scope="module")
def digits():
    return make_splits("same-distribution", load("digits"), seed=0)


@pytest.fixture(scope="module")
def digits_mlp(digits):
    return train(digits.private_train, "mlp", 10)[0]


@pytest.fixture(scope="module")
def undefended_rmle(lenet, mnist):
    return rmle(lenet, *mnist[1:])


@pytest.fixture(scope="module")
def undefended_scores(digits_mlp, digits):
    """Inverse-net PSNR from the undefended logits and probabilities of the digits MLP, computed once."""
    cache = {}
    return lambda kind: cache.setdefault(kind, inverse_net(Scores(digits_mlp, kind), digits.private_test.x[:64], digits.public, 15))


def rmle(model, victims, public, defense=None):
    threat = ThreatModel(observer=Features(model, "conv1", defense=defense), white_box=WhiteBox(model, "client", "conv1"))
    return psnr(ATTACKS.get("rmle")(iterations=200)(threat, Targets(threat.observer.intercept(victims)), public).images, victims)


def inverse_net(observer, victims, public, epochs):
    threat = ThreatModel(observer=observer)
    return psnr(ATTACKS.get("inverse-net")(epochs=epochs)(threat, Targets(threat.observer.intercept(victims)), public).images, victims)


class Recorder(Attack):
    """Keeps what it is given: the intercepted observations and the answers to its own queries."""

    name = "recorder"
    observes = frozenset({"features"})

    def run(self, threat, targets, attacker_data, gen):
        self.seen = {"intercepted": targets.observations, "queried": threat.observer(attacker_data.x)}
        return Reconstruction(attacker_data.x[:1])


def test_the_attacker_observes_the_defended_tensor(lenet, mnist):
    _, victims, public = mnist
    defense = build_defense("laplace-noise", {"scale": 0.5}, "relu2")
    threat = ThreatModel(observer=Features(lenet, "relu2", defense=defense))
    recorder = Recorder()
    recorder(threat, Targets(threat.observer.intercept(victims)), public)
    with torch.no_grad():
        for name, x in (("intercepted", victims), ("queried", public.x)):
            noise = recorder.seen[name] - lenet.features(x, "relu2")
            assert noise.abs().mean().item() == pytest.approx(0.5, rel=0.05), f"{name}: E|Laplace(0, b)| = b"
    assert threat.describe() == "features(relu2) under laplace-noise"


def test_the_runner_wraps_the_oracle_and_checks_the_observation(lenet):
    cfg = ExperimentConfig(access={"observe": "probs"}, attack={"name": "inverse-net"}, defense={"name": "round", "params": {"decimals": 1}})
    threat, _ = build_threat(cfg, lenet, build_defense("round", {"decimals": 1}))
    assert threat.observer.defense.name == "round"
    with pytest.raises(ModelinvError, match=r"defense 'top-k' perturbs probs, not the observed features \(access.observe\)"):
        prepare(ExperimentConfig(access={"layer": "relu2"}, attack={"name": "inverse-net"}, defense={"name": "top-k"}))


@pytest.mark.parametrize("name,params", [("laplace-noise", {"scale": 0.5}), ("gaussian-noise", {"sigma": 0.5}), ("split-dropout", {"p": 0.5})])
def test_feature_defenses_lower_rmle_psnr(undefended_rmle, mnist, name, params):
    data, victims, public = mnist
    defense = build_defense(name, params, "conv1")
    defended, _ = train(data, "lenet", 6, defense)
    assert undefended_rmle > 40, "undefended conv1 is invertible"
    assert rmle(defended, victims, public, defense) < 25
    assert accuracy(defense.deployed(defended), data) > 0.7, "trained with the noise, the model still works"


def test_nopeek_lowers_distance_correlation_and_inverse_net_psnr(lenet, mnist, mnist_splits):
    data, victims, public = mnist
    defense = build_defense("nopeek", {"weight": 3.0}, "relu2")
    defended, _ = train(data, "lenet", 6, defense)
    x = mnist_splits.private_test.x[:256].double()
    with torch.no_grad():
        dcor = {m: distance_correlation(x, model.features(x.float(), "relu2").double()).item() for m, model in (("none", lenet), ("nopeek", defended))}
    assert dcor["nopeek"] < dcor["none"] - 0.02
    assert inverse_net(Features(defended, "relu2"), victims, public, 4) < inverse_net(Features(lenet, "relu2"), victims, public, 4)


@pytest.mark.parametrize("name,params,kind", [("round", {"decimals": 0}, "logits"), ("top-k", {"k": 1}, "probs"), ("label-only", {}, "probs")])
def test_score_defenses_lower_inverse_net_psnr(digits_mlp, digits, undefended_scores, name, params, kind):
    defended = inverse_net(Scores(digits_mlp, kind, defense=build_defense(name, params)), digits.private_test.x[:64], digits.public, 15)
    assert defended < undefended_scores(kind) - 0.2


def test_dp_sgd_reports_epsilon_and_costs_accuracy(digits, digits_mlp):
    by_sigma = {s: train(digits.private_train, "mlp", 5, build_defense("dp-sgd", {"noise_multiplier": s})) for s in (1.0, 2.0)}
    eps = {s: meta["metrics"]["epsilon"] for s, (_, meta) in by_sigma.items()}
    assert 0 < eps[2.0] < eps[1.0] < float("inf")
    assert by_sigma[2.0][1]["metrics"]["delta"] == 1e-5
    assert accuracy(by_sigma[2.0][0], digits.private_test) < accuracy(digits_mlp, digits.private_test) - 0.1
    _, meta = train(digits.private_train, "mlp", 1, build_defense("dp-sgd", {"target_epsilon": 2.0}))
    assert meta["metrics"]["epsilon"] == pytest.approx(2.0, rel=0.02)


def mi_face_on_digits(defense):
    cfg = ExperimentConfig(
        data={"source": "digits"},
        target={"arch": "mlp", "train": {"epochs": 10}},
        evaluator={"arch": "mlp", "args": {"hidden": [256]}, "train": {"epochs": 10}},
        access={"observe": None, "white_box": "full"},
        attack={"name": "mi-face", "params": {"iterations": 150, "jitter": 0}},  # Algorithm 1 without jitter
        per_class=3,
        defense=defense,
        metrics=["attack_acc_top1", "knn_ratio"],
    )
    return run_experiment(cfg)[0]


@pytest.mark.parametrize("name,params", [("mid", {"beta": 1.0}), ("bido", {"a1": 5.0, "a2": 20.0}), ("dp-sgd", {"noise_multiplier": 1.0})])
def test_training_defenses_lower_mi_face_attack_accuracy_and_quality(name, params):
    undefended = mi_face_on_digits(None)
    defended = mi_face_on_digits({"name": name, "params": params})
    assert defended["defense"] == name and defended["defense_params"] == {**defended["defense_params"], **params}
    assert defended["attack_acc_top1"] < undefended["attack_acc_top1"]
    assert defended["knn_ratio"] > undefended["knn_ratio"]


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("laplace-noise", {"scael": 1.0}, "unknown field 'defense.params.scael'; did you mean 'scale'?"),
        ("gaussian-noise", {"sigma": -1}, "invalid 'defense.params.sigma'"),
        ("dp-sgd", {}, "set exactly one of noise_multiplier and target_epsilon"),
        ("blur", {}, "unknown defense 'blur'"),
    ],
)
def test_bad_defense_params_name_the_field(name, params, message):
    with pytest.raises(ModelinvError, match=message):
        build_defense(name, params)


def test_list_defenses(capsys):
    code, out, _ = cli(capsys, "list", "defenses", "--json")
    rows = {d["name"]: d for d in json.loads(out)["defenses"]}
    assert code == 0
    assert {"laplace-noise", "gaussian-noise", "round", "top-k", "label-only", "nopeek", "split-dropout", "dp-sgd", "mid", "bido"} <= set(rows)
    assert rows["top-k"]["perturbs"] == ["probs"] and rows["dp-sgd"]["kind"] == "training"


def test_tradeoff_writes_table_and_plot(capsys, tmp_path):
    config = {
        "data": {"source": "digits"},
        "target": {"arch": "splitnn-mlp", "train": {"epochs": 3}},
        "evaluator": {"arch": "mlp", "train": {"epochs": 3}},
        "num_targets": 16,
        "attacks": [{"name": "inverse-net", "params": {"epochs": 2}}],
        "sweep": {"defense": "dp-sgd", "param": "noise_multiplier", "values": [1.0, 2.0]},
    }
    (tmp_path / "tradeoff.yaml").write_text(yaml.safe_dump(config))
    code, _, err = cli(capsys, "tradeoff", tmp_path / "tradeoff.yaml", "--out", tmp_path / "out")
    assert code == 0, err
    store = ResultsStore(tmp_path / "out", create=False)
    rows = sorted(store.rows(), key=lambda r: r["config"]["defense"]["params"]["noise_multiplier"] if r["defense"] else 0)
    store.close()
    assert [r["defense_params"]["noise_multiplier"] if r["defense"] else None for r in rows] == [None, 1.0, 2.0]
    assert rows[1]["epsilon"] > rows[2]["epsilon"]
    table = (tmp_path / "out" / "tradeoff.md").read_text()
    header = "| noise_multiplier | target_acc | epsilon | inverse-net ssim | inverse-net ssim trivial | inverse-net psnr | inverse-net psnr trivial |"
    assert header in table and "| none |" in table
    assert (tmp_path / "out" / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
