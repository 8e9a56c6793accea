"""PLG-MI on the class-disjoint MNIST protocol, with a briefly trained LeNet and a tiny GAN.

The target and evaluator are those of tests/test_gmi_kedmi.py and tests/test_blackbox_attacks.py, so a test
session trains them once, and the LOMMA test there trains this module's GAN (same target, parameters and seed).
"""

from pathlib import Path

import pytest
import torch

from modelinv.attacks import ATTACKS, Targets
from modelinv.errors import AccessDenied, ModelinvError
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.runner import prepare, run_experiment
from modelinv.gans.plg import max_margin_loss, random_augment
from modelinv.models.store import load_checkpoint
from modelinv.models.trainer import predict_logits
from modelinv.oracle import Scores, ThreatModel, WhiteBox

TINY = {"top_k": 100, "gan_steps": 120, "n_critic": 1, "gan_batch": 32, "latent_dim": 16, "width": 8, "iterations": 150}
PER_CLASS = 3

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def config():
    return ExperimentConfig.model_validate(
        {
            "data": {"source": "mnist5k", "split": "class-disjoint", "evaluator_fraction": 0.2},  # as test_blackbox_attacks: shared cache keys
            "target": {"arch": "lenet", "train": {"epochs": 2}},
            "evaluator": {"arch": "eval-cnn", "train": {"epochs": 2}},
            "access": {"observe": None, "white_box": "full"},
            "attack": {"name": "plg-mi", "params": TINY},
            "per_class": PER_CLASS,
        }
    )


@pytest.fixture(scope="module")
def setting(config):
    return prepare(config)


def attack(setting, seed=0, **params):
    threat = ThreatModel(white_box=WhiteBox(setting.target))
    classes = torch.arange(5).repeat_interleave(PER_CLASS)
    return ATTACKS.get("plg-mi")(**{**TINY, **params})(threat, Targets(classes=classes), setting.splits.public, seed=seed), classes


@pytest.mark.slow
def test_runs_end_to_end_from_an_experiment_config(config, setting):
    row, images = run_experiment(config, setting)
    assert images["reconstructions"].shape == (5 * PER_CLASS, 1, 28, 28)
    assert 0.0 <= row["attack_acc_top1"] <= 1.0 and row["attack_acc_top5"] is None  # top-5 of 5 classes: n/a
    assert row["knn_dist"] > 0 and row["knn_ratio"] > 0 and row["fid_eval"] >= 0
    search = 5 * PER_CLASS * TINY["iterations"] * 2  # two augmented views per step
    gan = row["attack_details"]["gan"]
    assert row["gradients"] == search + gan["target_evaluations"] and gan["target_evaluations"] > 0  # GAN training counts, cached or not


@pytest.fixture(scope="module")
def twice(setting):
    """The same attack run twice, (result, classes) each: the second always with the GAN from the cache."""
    return attack(setting), attack(setting)


@pytest.mark.slow
def test_latent_search_beats_random_latents_of_the_same_generator(setting, twice):
    result, classes = twice[0]
    generator, _ = load_checkpoint(Path(result.meta["gan"]["path"]) / "generator")
    z = torch.randn(len(classes), TINY["latent_dim"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        baseline = generator(z, classes)
    logits = {"attack": predict_logits(setting.target, result.images), "random": predict_logits(setting.target, baseline)}
    accuracy = {k: (v.argmax(1) == classes).float().mean().item() for k, v in logits.items()}
    margin = {k: max_margin_loss(v, classes).mean().item() for k, v in logits.items()}
    assert accuracy["attack"] == 1.0 and accuracy["random"] <= 0.5
    assert margin["attack"] < 0 < margin["random"]


@pytest.mark.slow
def test_second_run_reuses_the_cached_gan_and_repeats_itself(twice):
    (first, classes), (second, _) = twice
    assert second.meta["gan"]["cached"] and second.meta["gan"]["path"] == first.meta["gan"]["path"]
    assert second.meta["gradients"] == first.meta["gradients"] == len(classes) * TINY["iterations"] * 2 + first.meta["gan"]["target_evaluations"]
    assert torch.equal(first.images, second.images)


def test_random_augment_keeps_shape_and_is_seeded():
    x = torch.rand(4, 1, 28, 28)
    a, b = (random_augment(x, 0.8, 5.0, torch.Generator().manual_seed(0)) for _ in range(2))
    assert a.shape == x.shape and torch.equal(a, b)
    assert torch.allclose(random_augment(x, 1.0, 0.0, torch.Generator()), x, atol=1e-5)


def test_bad_params_and_threat_models_are_refused(setting):
    with pytest.raises(ModelinvError, match="invalid 'attack.params.top_k'"):
        ATTACKS.get("plg-mi")(top_k=0)
    with pytest.raises(ModelinvError, match="invalid 'attack.params.alpha'"):
        ATTACKS.get("plg-mi")(alpha=-1)
    with pytest.raises(ModelinvError, match="unknown field 'attack.params.iteration'; did you mean 'iterations'"):
        ATTACKS.get("plg-mi")(iteration=3)
    with pytest.raises(ModelinvError, match="top_k=5000 exceeds the 2500 images"):
        attack(setting, top_k=5000)
    with pytest.raises(AccessDenied, match="'plg-mi' needs white-box access"):
        threat = ThreatModel(observer=Scores(setting.target, "logits"))
        ATTACKS.get("plg-mi")(**TINY)(threat, Targets(classes=torch.zeros(1, dtype=torch.long)), setting.splits.public)
