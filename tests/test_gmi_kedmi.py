"""GMI and KEDMI on the class-disjoint MNIST protocol, with a small target and tiny GANs.

Each attack runs twice from an experiment config: the first run trains its GAN, the second must
reuse it from the cache and reproduce the same images. The target and evaluator come from the
session's cache (tests/test_blackbox_attacks.py uses the same ones); only the GANs are trained
into a cache of this module's own.
"""

from __future__ import annotations

from typing import get_args

import pytest
import torch

from helpers import own_model_cache
from modelinv.attacks import ATTACKS, Targets
from modelinv.attacks.generative import GANS, GANFamily
from modelinv.attacks.goals import goal
from modelinv.errors import AccessDenied, ModelinvError
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.runner import prepare, run_experiment
from modelinv.models.store import load_checkpoint
from modelinv.models.trainer import predict_logits
from modelinv.oracle import Scores, ThreatModel, WhiteBox

TINY_GAN = {"gan_steps": 60, "n_critic": 2, "gan_batch": 32, "width": 8}
PARAMS = {
    "gmi": {**TINY_GAN, "iterations": 60, "restarts": 2},
    "kedmi": {**TINY_GAN, "iterations": 150},
}


def config(attack: str, metrics: list[str] | None = None, **params) -> ExperimentConfig:
    return ExperimentConfig(
        seed=0,
        data={"split": "class-disjoint", "evaluator_fraction": 0.2},  # a tiny target: give it 80% of the private pool, the judge the rest
        target={"arch": "lenet", "train": {"epochs": 2}},
        evaluator={"arch": "eval-cnn", "train": {"epochs": 2}},
        access={"observe": None, "white_box": "full"},
        attack={"name": attack, "params": {**PARAMS[attack], **params}},
        per_class=4,
        metrics=metrics,
    )


pytestmark = pytest.mark.usefixtures("one_thread")
SWAPS = {"gmi": "kedmi", "kedmi": "gmi"}
GAN_OF = {"gmi": "wgan-gp", "kedmi": "kedmi"}


@pytest.fixture(scope="module")
def setting():
    """The target and evaluator, from the session's cache."""
    return prepare(config("gmi"))


@pytest.fixture(scope="module")
def runs(setting, tmp_path_factory):
    """For each attack: two (row, images) runs of the same attack, all metrics on the first (the second is for the cache).

    The runs get an empty cache of their own, so the first run of each attack trains its GAN whatever ran before
    (tests/test_blackbox_attacks.py trains the same GMI and KEDMI GANs into the session's cache); given the
    setting, a run takes nothing else from the cache."""
    with own_model_cache(tmp_path_factory.mktemp("gan-cache")):
        out = {attack: [run_experiment(config(attack, metrics), setting) for metrics in (None, ["attack_acc_top1"])] for attack in PARAMS}
        out["kedmi means"] = run_experiment(config("kedmi", ["attack_acc_top1"], output="means"), setting)  # the cached GAN, the same search
        for attack, other in SWAPS.items():  # each search on the other attack's cached GAN
            out[f"{attack} on {other}'s gan"] = run_experiment(config(attack, ["attack_acc_top1"], gan=GAN_OF[other]), setting)
        return out


@pytest.mark.slow
@pytest.mark.parametrize("attack", list(PARAMS))
def test_runs_end_to_end_from_a_config(runs, attack):
    row, images = runs[attack][0]
    assert set(goal("class").default_metrics) <= set(row)
    assert images["reconstructions"].shape == (20, 1, 28, 28)
    assert 0 <= images["reconstructions"].min() and images["reconstructions"].max() <= 1
    assert row["queries"] == 0 and row["gradients"] > 0
    assert row["access"] == "white-box full"


@pytest.mark.slow
@pytest.mark.parametrize("attack", list(PARAMS))
def test_second_run_reuses_the_gan_and_repeats_the_images(runs, attack):
    (first, images1), (second, images2) = runs[attack]
    assert first["attack_details"]["gan"]["cached"] is False
    assert second["attack_details"]["gan"]["cached"] is True
    assert second["attack_details"]["gan"]["path"] == first["attack_details"]["gan"]["path"]
    assert torch.equal(images1["reconstructions"], images2["reconstructions"])
    assert second["gradients"] == first["gradients"], "a cached GAN's training evaluations still count"


@pytest.mark.slow
@pytest.mark.parametrize("attack", list(PARAMS))
def test_beats_random_latents_of_the_same_gan(runs, setting, attack):
    """The target recognises the wanted class in the attack's images far more often than in G(z) for random z."""
    row, images = runs[attack][0]
    generator, _ = load_checkpoint(f"{row['attack_details']['gan']['path']}/generator")
    with torch.no_grad():
        random_images = generator(torch.randn(200, generator.latent_dim, generator=torch.Generator().manual_seed(1)))
        random_acc = (predict_logits(setting.target, random_images).argmax(1) == torch.arange(5).repeat(40)).float().mean().item()
        attack_acc = (predict_logits(setting.target, images["reconstructions"]).argmax(1) == images["labels"]).float().mean().item()
    assert attack_acc >= 0.8
    assert attack_acc > random_acc + 0.4


@pytest.mark.slow
def test_kedmi_means_are_the_distributions_means_after_the_same_search(runs):
    """`output: means` changes what is returned, not the search: the same learned distributions (sigma, losses),
    one image per class (G(mu_y)) where the samples differ, and the judge recognises the class in it more often."""
    (samples, sampled), (means, meant) = runs["kedmi"][0], runs["kedmi means"]
    for key in ("sigma_mean_per_class", "final_prior_loss", "final_identity_loss"):
        assert means["attack_details"][key] == samples["attack_details"][key]
    images, labels = meant["reconstructions"], meant["labels"]
    assert torch.equal(labels, sampled["labels"])
    for c in labels.unique():
        same = images[labels == c]
        assert torch.equal(same, same[:1].expand_as(same))
        assert not torch.equal(sampled["reconstructions"][labels == c][0], sampled["reconstructions"][labels == c][1])
    assert means["attack_acc_top1"] > samples["attack_acc_top1"]  # 0.8 vs 0.4 here: the samples spread beyond the class


@pytest.mark.slow
@pytest.mark.parametrize("attack", list(SWAPS))
def test_gan_swap_searches_the_other_attacks_gan(runs, attack):
    """`gan: <the other family>` loads the very GAN the other attack searched (same cache entry) and runs this
    attack's own search on it: its details, new images."""
    other = SWAPS[attack]
    (swapped, images), (own, own_images), (theirs, their_images) = runs[f"{attack} on {other}'s gan"], runs[attack][0], runs[other][0]
    assert swapped["attack_details"]["gan"]["path"] == theirs["attack_details"]["gan"]["path"] != own["attack_details"]["gan"]["path"]
    assert swapped["attack_details"]["gan"]["cached"] is True
    assert set(swapped["attack_details"]) - {"gan"} == set(own["attack_details"]) - {"gan"}
    for reference in (own_images, their_images):
        assert not torch.equal(images["reconstructions"], reference["reconstructions"])
    assert 0 <= images["reconstructions"].min() and images["reconstructions"].max() <= 1


@pytest.mark.parametrize(("attack", "field", "value"), [("gmi", "gp_weight", 5.0), ("kedmi", "entropy_weight", 0.1)])
def test_a_setting_of_the_replaced_gan_is_refused(attack, field, value):
    other = GAN_OF[SWAPS[attack]]
    with pytest.raises(ModelinvError, match=f"attack.params.*{field} set the {GAN_OF[attack]} GAN, which gan: {other} replaces"):
        ATTACKS.get(attack)(gan=other, **{field: value})
    ATTACKS.get(attack)(gan=other, gan_steps=10)  # the settings every GAN has are kept
    ATTACKS.get(attack)(**{field: value})  # and its own GAN's settings with its own GAN
    with pytest.raises(ModelinvError, match="attack.params.gan"):
        ATTACKS.get(attack)(gan="plg")
    assert set(get_args(GANFamily)) == set(GANS)  # the parameter names every family, and only those


@pytest.mark.slow
@pytest.mark.parametrize("attack", list(PARAMS))
def test_kedmi_gan_is_keyed_by_the_target(runs, attack):
    """KEDMI's GAN learns from the target (its soft labels), GMI's only from public data."""
    request = runs[attack][0][0]["attack_details"]["gan"]
    meta = load_checkpoint(f"{request['path']}/generator")[1]
    assert (meta["request"]["train"]["target"] is not None) == (attack == "kedmi")


@pytest.mark.parametrize("attack", list(PARAMS))
def test_bad_parameters_name_the_field(attack):
    with pytest.raises(ModelinvError, match="attack.params.lambda_id"):
        ATTACKS.get(attack)(lambda_id=-1)
    with pytest.raises(ModelinvError, match="attack.params.gan_steps"):
        ATTACKS.get(attack)(gan_steps=0)
    with pytest.raises(ModelinvError, match="unknown field 'attack.params.iteration'; did you mean 'iterations'"):
        ATTACKS.get(attack)(iteration=5)


@pytest.mark.parametrize("attack", list(PARAMS))
def test_refuses_without_white_box_or_classes(setting, attack):
    public = setting.splits.public
    with pytest.raises(AccessDenied, match="white-box"):
        ATTACKS.get(attack)()(ThreatModel(observer=Scores(setting.target)), Targets(classes=torch.arange(5)), public)
    with pytest.raises(ModelinvError, match="targets.classes"):
        ATTACKS.get(attack)()(ThreatModel(white_box=WhiteBox(setting.target)), Targets(classes=torch.tensor([7])), public)
