"""What every attack shares, on tiny untrained targets: seeding that leaves the caller's random state alone and
repeats itself, the one minibatch loop, threat models written from class attributes, the goals' metrics."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from helpers import own_model_cache
from modelinv.attacks import ATTACKS, Targets, describe_attacks
from modelinv.attacks.goals import GOALS
from modelinv.data import load
from modelinv.data.schema import sensitive_of
from modelinv.data.types import ImageDataset
from modelinv.errors import AccessDenied
from modelinv.metrics import METRICS
from modelinv.models import build_model
from modelinv.models.trainer import shuffled_batches, train_epochs
from modelinv.oracle import Features, Scores, ThreatModel, WhiteBox
from modelinv.seeding import derive_seed, seeded

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_GAN = {"gan_steps": 3, "n_critic": 2, "gan_batch": 8, "width": 4}
# attack -> (parameters, threat model from (image target, tabular target), what it is asked to invert)
CASES = {
    "rmle": ({"iterations": 5}, lambda m, t: ThreatModel(observer=Features(m, "conv1"), white_box=WhiteBox(m, "client", "conv1")), "observations"),
    "shadow": ({"iterations": 5, "epochs": 1, "batch_size": 32}, lambda m, t: ThreatModel(observer=Features(m, "conv1"), white_box=WhiteBox(m, "server", "conv1")), "observations"),
    "inverse-net": ({"epochs": 1, "conv_width": 8}, lambda m, t: ThreatModel(observer=Features(m, "relu2")), "observations"),
    "mi-face": ({"iterations": 5, "window": 2}, lambda m, t: ThreatModel(white_box=WhiteBox(m)), "classes"),
    "gmi": ({**TINY_GAN, "iterations": 3, "restarts": 2}, lambda m, t: ThreatModel(white_box=WhiteBox(m)), "classes"),
    "kedmi": ({**TINY_GAN, "iterations": 3, "lomma": True, "lomma_surrogates": ["mlp"], "lomma_epochs": 1}, lambda m, t: ThreatModel(white_box=WhiteBox(m)), "classes"),
    "plg-mi": ({**TINY_GAN, "top_k": 8, "latent_dim": 8, "iterations": 3}, lambda m, t: ThreatModel(white_box=WhiteBox(m)), "classes"),
    "mirror-bb": ({**TINY_GAN, "pool": 20, "population": 4, "generations": 2}, lambda m, t: ThreatModel(observer=Scores(m, "probs")), "classes"),
    "brep-mi": ({**TINY_GAN, "iterations": 3, "init_batch": 16, "init_batches": 2, "sphere_points": 4}, lambda m, t: ThreatModel(observer=Scores(m, "label")), "classes"),
    "rlb-mi": ({**TINY_GAN, "episodes": 6, "agent_batch": 2, "hidden": 8}, lambda m, t: ThreatModel(observer=Scores(m, "probs")), "classes"),
    "fredrikson-attr": ({"evidence": "label"}, lambda m, t: ThreatModel(observer=Scores(t, "probs")), "records"),
    "fredrikson-attr-wb": ({}, lambda m, t: ThreatModel(observer=Scores(t, "probs"), white_box=WhiteBox(t)), "records"),
    "inverse-attr": ({}, lambda m, t: ThreatModel(observer=Scores(t, "probs")), "records"),
}


def global_states() -> tuple:
    numpy_state = np.random.get_state()
    return torch.random.get_rng_state(), random.getstate(), (numpy_state[0], numpy_state[1].copy(), *numpy_state[2:])


def assert_same_states(before: tuple, after: tuple) -> None:
    assert torch.equal(before[0], after[0]), "torch's global random state changed"
    assert before[1] == after[1], "Python's random state changed"
    assert before[2][0] == after[2][0] and np.array_equal(before[2][1], after[2][1]) and before[2][2:] == after[2][2:], "NumPy's random state changed"


@pytest.fixture(scope="module")
def world():
    """Untrained targets (a LeNet on 28x28 images, a logistic regression on planted records), the attacker's data and victims."""
    gen = torch.Generator().manual_seed(0)
    images = ImageDataset(x=torch.rand(48, 1, 28, 28, generator=gen), y=torch.arange(48) % 10, classes=tuple("0123456789"), name="noise")
    records = load("planted:2")
    with seeded(0):
        lenet = build_model("lenet", (1, 28, 28), 10).eval()
        logreg = build_model("logreg", records.input_shape, records.num_classes)
    public, victims = records.subset(torch.arange(200)), records.subset(torch.arange(200, 230))
    logreg.fit_inputs(public.x)
    return {"lenet": lenet, "logreg": logreg.eval(), "images": images, "public": public, "victims": victims}


def run(world, name: str):
    params, threat_of, asks = CASES[name]
    threat = threat_of(world["lenet"], world["logreg"])
    if asks == "observations":
        targets, data = Targets(observations=threat.observer.intercept(world["images"].x[:3])), world["images"]
    elif asks == "classes":
        targets, data = Targets(classes=torch.tensor([0, 3, 3])), world["images"]
    else:
        victims = world["victims"]
        observations = threat.observer.intercept(victims.x)
        targets = Targets(observations=observations, classes=victims.y, records=sensitive_of(victims).hide(victims.x))
        data = world["public"]
    return ATTACKS.get(name)(**params)(threat, targets, data, seed=7)


def test_the_cases_cover_every_registered_image_and_tabular_attack():
    """Text attacks run on text targets and are tested in tests/test_text.py."""
    assert set(CASES) == {name for name in ATTACKS.names() if not GOALS[ATTACKS.get(name).goal].text}
    assert {ATTACKS.get(name).goal for name in ATTACKS.names()} - set(GOALS) == set(), "every attack's goal is declared"


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_attack_leaves_the_global_random_state_alone_and_repeats_itself(world, name, tmp_path):
    """Twice with the same seed: the first run trains whatever the attack trains (GANs, surrogates, decoders) into an
    empty cache, the second loads it; neither changes torch's, NumPy's or Python's global random state."""
    torch.manual_seed(1234)
    random.seed(5)
    np.random.seed(6)
    before = global_states()
    with own_model_cache(tmp_path):
        first = run(world, name)
        assert_same_states(before, global_states())
        second = run(world, name)
    assert_same_states(before, global_states())
    assert torch.equal(first.images, second.images)


def test_seeded_seeds_the_block_and_restores_the_callers_states():
    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    before = global_states()
    with seeded(11):
        a = (torch.rand(2), random.random(), np.random.rand())
        torch.manual_seed(99)  # a callee reseeding globally is contained too
    with seeded(11):
        b = (torch.rand(2), random.random(), np.random.rand())
    with seeded(torch.Generator().manual_seed(5)):
        c = nn.Linear(3, 3).weight.detach().clone()
    with seeded(derive_seed(torch.Generator().manual_seed(5))):
        d = nn.Linear(3, 3).weight.detach().clone()
    with seeded(None):
        torch.rand(5)
    assert_same_states(before, global_states())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
    assert torch.equal(c, d), "a generator seeds the block with one derive_seed draw"


def test_train_epochs_steps_through_a_shuffled_partition_per_epoch_and_can_stop_early():
    x = torch.linspace(-1, 1, 10)[:, None]
    weight = nn.Parameter(torch.zeros(1))
    optimiser = torch.optim.SGD([weight], lr=0.1)
    seen: list[torch.Tensor] = []

    def loss(idx: torch.Tensor) -> torch.Tensor:
        seen.append(idx)
        return ((x[idx, 0] * weight - 2 * x[idx, 0]) ** 2).mean()

    losses = []
    for epoch_loss in train_epochs(loss, optimiser, 10, 3, 4, torch.Generator().manual_seed(0)):
        losses.append(epoch_loss)
        if len(losses) == 2:
            break
    gen = torch.Generator().manual_seed(0)
    expected = [*shuffled_batches(10, 4, gen), *shuffled_batches(10, 4, gen)]
    assert [len(i) for i in seen] == [4, 4, 2, 4, 4, 2] and all(torch.equal(a, b) for a, b in zip(seen, expected))
    assert len(losses) == 2 and losses[1] < losses[0]
    assert 0 < weight.item() < 2


def test_threat_models_are_written_from_the_class_attributes():
    rows = {r["name"]: r for r in describe_attacks()}
    assert rows["rmle"]["threat"] == "white-box client model + observed split-layer features"
    assert rows["shadow"]["threat"] == "white-box server model + observed split-layer features"
    assert rows["gmi"]["threat"] == rows["fredrikson-attr-wb"]["threat"] == "white-box full model"
    assert rows["inverse-net"]["threat"] == "black-box: queries for split-layer features or logits or probabilities"
    assert rows["mirror-bb"]["threat"] == "black-box: queries for probabilities"
    assert rows["brep-mi"]["threat"] == "label-only: queries for top-1 labels"
    assert all(set(ATTACKS.info(name)) == {"name", "summary"} for name in ATTACKS.names()), "no threat text is registered by hand"
    assert [n for n, r in rows.items() if r["queries"]] == [
        "bow-inversion", "brep-mi", "canary-exposure", "extraction", "fredrikson-attr", "inverse-attr", "inverse-net", "mirror-bb", "name-recovery", "rlb-mi", "text-attribute",
    ]
    assert rows["bow-inversion"]["threat"] == "black-box: queries for split-layer features" and rows["canary-exposure"]["threat"] == "black-box: queries for logits"


def test_fredrikson_variants_are_two_attacks_with_fixed_requirements(world):
    black, white = ATTACKS.get("fredrikson-attr"), ATTACKS.get("fredrikson-attr-wb")
    assert (black.white_box, black.observes) == (frozenset(), frozenset({"probs", "logits", "label"}))
    assert (white.white_box, white.observes) == (frozenset({"full"}), frozenset())
    white(evidence="output")
    assert white.observes == frozenset(), "parameters do not change an attack's requirements"
    victims = world["victims"]
    targets = Targets(classes=victims.y, records=sensitive_of(victims).hide(victims.x))
    only_model = ThreatModel(white_box=WhiteBox(world["logreg"]))
    assert white(evidence="label")(only_model, targets, world["public"]).meta["queries"] == 0
    with pytest.raises(AccessDenied, match="'fredrikson-attr-wb' needs to observe"):
        white(evidence="output")(only_model, targets, world["public"])


def test_every_goal_names_registered_metrics_and_every_attack_has_a_goal():
    assert {ATTACKS.get(name).goal for name in ATTACKS.names()} == set(GOALS)
    for goal in GOALS.values():
        for metric in (*goal.default_metrics, *goal.success):
            METRICS.get(metric)
        assert goal.headline in goal.success and set(goal.success) <= set(goal.default_metrics)
