"""The audit extends defense strengths when none protects (issue 18, Deliver 6): until one protects, the target's
accuracy falls below the floor, or `max_rounds` rounds have run; the answer names the cheapest protecting
defense or says plainly that none does before the floor. The runs are stubbed (synthetic rows whose attack
success and accuracy both fall with the defense strength), so this takes about a second; the real audit is in
test_audit.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import modelinv.api as api
from helpers import assert_one_line_error, cli
from modelinv.errors import ModelinvError
from modelinv.experiment.audit import STRENGTHS, stronger
from modelinv.experiment.config import DefenseConfig
from modelinv.experiment.sweep import run_id
from modelinv.models import build_model

TRIVIAL = {"ssim": 0.12, "psnr": 12.1, "attack_acc_top1": 0.08}
UNDEFENDED_ACC = 0.96


class FakeGrid:
    """Stands in for experiment.sweep.run_grid: one synthetic row per experiment. The attack's excess over the
    trivial answer is exp(-s / decay) of 6 margins at strength s (it protects once s > decay * ln 6), and the
    target's accuracy falls by `slope` per unit of strength (gaussian-noise twice as fast: laplace is cheaper)."""

    def __init__(self, decay: float, slope: float):
        self.decay, self.slope, self.calls = decay, slope, []

    def __call__(self, grid, out, **kwargs):
        grid = list(grid)
        Path(out).mkdir(parents=True, exist_ok=True)  # as the results store does
        self.calls.append([run_id(c) for c in grid])
        return [self.row(c) for c in grid]

    def row(self, cfg):
        d = cfg.defense
        strength = 0.0 if d is None else float(d.params.get(STRENGTHS[d.name].param, 0.0))
        fraction = math.exp(-strength / self.decay)
        accuracy = UNDEFENDED_ACC - (1 if d is None or d.name == "laplace-noise" else 2) * self.slope * strength
        return {
            "run_id": run_id(cfg), "attack": cfg.attack.name, "goal": "reconstruct", "model": "lenet", "layer": "relu2", "access": "features(relu2)",
            "data": "mnist5k", "seed": 0, "defense": d and d.name, "defense_params": d and dict(d.params), "target_test_acc": round(accuracy, 6),
            "ssim": TRIVIAL["ssim"] + 0.6 * fraction, "psnr": TRIVIAL["psnr"] + 18 * fraction, "attack_acc_top1": TRIVIAL["attack_acc_top1"] + 1.2 * fraction,
            "baselines": {"mean-public": dict(TRIVIAL)}, "config": {"attack": {"name": cfg.attack.name, "params": {}}},
        }


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("user") / "lenet.safetensors"
    save_file(build_model("lenet", (1, 28, 28), 10).state_dict(), str(path))
    return path


def audit(monkeypatch, weights, tmp_path, fake, **options):
    monkeypatch.setattr(api, "run_grid", fake)
    monkeypatch.setattr(api, "write_report", lambda out, **kwargs: Path(out) / "report.html")
    cfg = api.audit_config(str(weights), "lenet", "mnist5k", "features:relu2", attacks=["inverse-net"], **options)
    return api.run_audit([cfg], tmp_path / "audit").summaries[0]


def labels(summary):
    return [o["defense"] for o in summary["outcomes"] if o["name"] is not None]


def test_strengths_are_extended_until_a_defense_protects(monkeypatch, weights, tmp_path):
    fake = FakeGrid(decay=1.0, slope=0.02)  # scale 2.0 protects (2 > ln 6), at 4 points of accuracy
    summary = audit(monkeypatch, weights, tmp_path, fake)
    assert len(fake.calls) == 2 and fake.calls[1][: len(fake.calls[0])] == fake.calls[0], "the same grid, grown: finished runs are kept"
    assert len(fake.calls[1]) == 7 + 2
    assert summary["strengths"]["rounds"] == 1 and summary["strengths"]["stopped"] == "a defense protects"
    assert summary["strengths"]["added"] == ["laplace-noise(scale=2.0, train=False)", "gaussian-noise(sigma=2.0, train=False)"]
    assert summary["config"]["accuracy_floor"] == pytest.approx(UNDEFENDED_ACC - 0.10)  # the default floor
    assert summary["cheapest"] == "laplace-noise(scale=2.0, train=False)"
    assert summary["protection"].startswith("Cheapest defense that brings every attack down to the trivial answer: laplace-noise(scale=2.0, train=False), costing 4")
    assert json.loads((tmp_path / "audit" / "audit.json").read_text())["cheapest"] == summary["cheapest"]


def test_extension_stops_when_accuracy_falls_below_the_floor_and_says_none_protects(monkeypatch, weights, tmp_path):
    fake = FakeGrid(decay=10.0, slope=0.05)  # would protect only beyond strength 17.9; laplace accuracy 0.91, 0.86, 0.76 at 1, 2, 4
    summary = audit(monkeypatch, weights, tmp_path, fake, accuracy_floor=0.8)
    state = summary["strengths"]
    assert state["stopped"] == "accuracy floor reached" and state["rounds"] == 2 and len(fake.calls) == 3
    assert "laplace-noise(scale=4.0, train=False)" in labels(summary) and "laplace-noise(scale=8.0, train=False)" not in labels(summary)
    assert "gaussian-noise(sigma=4.0, train=False)" not in labels(summary), "gaussian accuracy fell below the floor at sigma 2.0"
    assert summary["cheapest"] is None
    assert summary["protection"].startswith(f"None of the {len(labels(summary))} defenses tried brings the attacks down to the trivial answer")
    assert "accuracy floor 80.0%" in summary["protection"]
    assert "stopped because accuracy floor reached" in state["note"]


def test_extension_stops_after_max_rounds(monkeypatch, weights, tmp_path):
    fake = FakeGrid(decay=100.0, slope=0.001)  # never protects within the rounds, accuracy barely moves
    summary = audit(monkeypatch, weights, tmp_path, fake, max_rounds=2)
    assert summary["strengths"]["rounds"] == 2 and summary["strengths"]["stopped"] == "max_rounds reached" and len(fake.calls) == 3
    assert "laplace-noise(scale=4.0, train=False)" in labels(summary) and "laplace-noise(scale=8.0, train=False)" not in labels(summary)
    assert summary["cheapest"] is None and summary["protection"].startswith("None of the 10 defenses tried")


def test_max_rounds_zero_keeps_the_listed_strengths(monkeypatch, weights, tmp_path):
    fake = FakeGrid(decay=100.0, slope=0.001)
    summary = audit(monkeypatch, weights, tmp_path, fake, max_rounds=0)
    assert len(fake.calls) == 1 and len(labels(summary)) == 6 and summary["strengths"]["added"] == []


def test_cli_options_reach_the_audit(monkeypatch, weights, tmp_path, capsys):
    fake = FakeGrid(decay=10.0, slope=0.05)
    monkeypatch.setattr(api, "run_grid", fake)
    monkeypatch.setattr(api, "write_report", lambda out, **kwargs: Path(out) / "report.html")
    args = ["audit", "--model", weights, "--arch", "lenet", "--data", "mnist5k", "--access", "features:relu2", "--attack", "inverse-net", "--out", tmp_path / "a"]
    code, out, err = cli(capsys, *args, "--accuracy-floor", 0.7, "--max-rounds", 1)
    assert code == 0, err
    summary = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert summary["config"]["accuracy_floor"] == 0.7 and summary["config"]["max_rounds"] == 1 and len(fake.calls) == 2
    assert "accuracy floor 70.0%" in out and "stopped because max_rounds reached" in out
    code, _, err = cli(capsys, *args, "--accuracy-floor", 1.5)
    assert_one_line_error(code, err, "accuracy_floor")


def test_floor_and_rounds_are_validated(weights):
    for bad in ({"accuracy_floor": 0}, {"accuracy_floor": 1.2}, {"max_rounds": -1}):
        with pytest.raises(ModelinvError) as err:
            api.audit_config(str(weights), "lenet", "mnist5k", "probs", **bad)
        assert len(str(err.value).splitlines()) == 1 and next(iter(bad)) in str(err.value)


def test_ladders():
    def step(name, params, accuracy=0.9, floor=0.5):
        new, at_floor = stronger([(DefenseConfig(name=name, params=p), accuracy) for p in params], floor)
        return [d.params for d in new], at_floor

    assert step("laplace-noise", [{"scale": 0.1, "train": False}, {"scale": 1.0, "train": False}]) == ([{"scale": 2.0, "train": False}], False)
    assert step("split-dropout", [{"p": 0.5}]) == ([{"p": 0.75}], False)
    assert step("round", [{"decimals": 2}, {"decimals": 1}]) == ([{"decimals": 0}], False)
    assert step("round", [{"decimals": 0}]) == ([], False)  # the end of the ladder
    assert step("top-k", [{"k": 1}]) == ([], False)
    assert step("label-only", [{}]) == ([], False)  # no strength to extend
    assert step("gaussian-noise", [{}]) == ([{"sigma": 1.0}], False)  # the defense's default strength (0.5) doubled
    assert step("laplace-noise", [{"scale": 1.0}], accuracy=0.4) == ([], True)  # below the floor
    assert step("laplace-noise", [{"scale": 1.0}, {"scale": 2.0}], floor=None) == ([{"scale": 4.0}], False)
