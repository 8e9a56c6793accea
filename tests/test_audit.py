"""`modelinv audit` on a model a user trained and saved themselves, checked against `modelinv run`."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import save_file

from helpers import assert_one_line_error, cli, invoke
from modelinv.data import load
from modelinv.errors import ModelinvError
from modelinv.experiment.audit import AuditConfig, applicable_attacks
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.runner import prepare, run_experiment
from modelinv.models import build_model
from modelinv.models.user import load_user_model
from modelinv.report.baselines import TRIVIAL

FAST = {"inverse-net": {"epochs": 8}}


@pytest.fixture(scope="module")
def user_lenet(tmp_path_factory):
    """A LeNet trained the way a user would: a plain torch loop, weights saved with safetensors."""
    torch.manual_seed(0)
    data = load("mnist5k")
    model = build_model("lenet", data.input_shape, data.num_classes)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    order = torch.randperm(len(data.x))[:2000]
    for _ in range(2):
        for batch in order.split(64):
            optimiser.zero_grad()
            F.cross_entropy(model(data.x[batch]), data.y[batch]).backward()
            optimiser.step()
    path = tmp_path_factory.mktemp("user") / "lenet.safetensors"
    save_file(model.state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def audit_dir(user_lenet, tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    params = out.parent / "params.yaml"
    params.write_text(yaml.safe_dump(FAST))
    args = ["audit", "--model", str(user_lenet), "--arch", "lenet", "--data", "mnist5k", "--access", "features:relu2"]
    assert invoke(*args, "--params", params, "--num-targets", 16, "--evaluator-epochs", 5, "--max-rounds", 1, "--out", out) == 0
    return out


@pytest.mark.slow
def test_audit_runs_the_attacks_the_access_allows_and_writes_a_report(audit_dir):
    summary = json.loads((audit_dir / "audit.json").read_text())
    assert summary["attacks"] == ["inverse-net"]  # rmle needs the client's weights, shadow the server's
    assert (audit_dir / "report.html").is_file()
    html = (audit_dir / "report.html").read_text()
    assert summary["verdict"][0].split(":")[0] in html
    defended = [o for o in summary["outcomes"] if o["name"] is not None]
    extended = summary["strengths"]["added"]  # one round at most: scale and/or sigma 2.0 when none of the six protects and accuracy allows
    assert len(defended) == 6 + len(extended) and len(extended) <= 2 and all("ssim" in o["attacks"]["inverse-net"] for o in defended)


@pytest.mark.slow
def test_audit_numbers_match_modelinv_run_and_beat_the_baseline(audit_dir, tmp_path):
    summary = json.loads((audit_dir / "audit.json").read_text())
    undefended = [json.loads(p.read_text()) for p in (audit_dir / "runs").glob("*/results.json")]
    undefended = [r for r in undefended if r["defense"] is None]
    assert len(undefended) == 1
    run_dir = next(p.parent for p in (audit_dir / "runs").glob("*/results.json") if json.loads(p.read_text())["defense"] is None)
    assert invoke("run", run_dir / "config.yaml", "--out", tmp_path / "rerun") == 0
    rerun = json.loads((tmp_path / "rerun" / "runs" / run_dir.name / "results.json").read_text())  # the same config: the same run id
    for metric in ("psnr", "ssim", "attack_acc_top1", "target_test_acc"):
        assert rerun[metric] == pytest.approx(undefended[0][metric], abs=1e-6)
    verdict = summary["verdict"][0]
    assert f"PSNR {rerun['psnr']:.1f} dB" in verdict and f"SSIM {rerun['ssim']:.2f}" in verdict
    assert rerun["psnr"] > summary["baselines"]["inverse-net"][TRIVIAL]["psnr"] + 3  # the trivial answer the verdict quotes


@pytest.mark.slow
def test_noise_defenses_lower_the_attack_and_the_answer_names_the_cheapest_or_none(audit_dir):
    summary = json.loads((audit_dir / "audit.json").read_text())
    ssim = {o["defense"]: o["attacks"]["inverse-net"]["ssim"]["mean"] for o in summary["outcomes"]}
    assert ssim["laplace-noise(scale=1.0, train=False)"] < ssim["laplace-noise(scale=0.1, train=False)"] < ssim["none"]
    costs = [o["accuracy_cost_points"] for o in summary["outcomes"] if o["name"] is not None]
    assert costs == sorted(costs), "defenses are listed cheapest first"
    protecting = [o["defense"] for o in summary["outcomes"] if o["name"] is not None and o["protects"]]
    assert summary["cheapest"] == (protecting[0] if protecting else None)
    assert summary["protection"].startswith("Cheapest defense" if protecting else "None of the")


def test_audit_errors_are_one_line(user_lenet, tmp_path, capsys):
    common = ["audit", "--model", user_lenet, "--data", "mnist5k", "--out", tmp_path]
    code, _, err = cli(capsys, *common, "--arch", "lenet", "--access", "pixels")
    assert_one_line_error(code, err, "invalid access 'pixels'")
    code, _, err = cli(capsys, *common, "--arch", "cnn-split", "--access", "features")
    assert_one_line_error(code, err, "does not match architecture 'cnn-split'")


@pytest.mark.slow
def test_audit_refuses_attacks_the_access_does_not_allow(user_lenet):
    """Trains the audit's judge (5 epochs) when the audit fixture has not: slow on its own."""
    with pytest.raises(ModelinvError, match="needs white-box access"):
        judge = {"arch": "eval-cnn", "train": {"epochs": 5}}  # the audit fixture's judge, from the cache
        cfg = AuditConfig(model=str(user_lenet), arch="lenet", data={"source": "mnist5k"}, access="features:relu2", attacks=["rmle"], evaluator=judge)
        applicable_attacks(cfg, prepare(cfg.experiment("rmle")))


def test_torchscript_models_are_cut_at_their_sequential_children(tmp_path):
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    torch.jit.script(seq).save(str(tmp_path / "seq.pt"))
    net = load_user_model(tmp_path / "seq.pt", "torchscript", (1, 28, 28), 10, {}, trust_code=True)
    x = torch.rand(4, 1, 28, 28)
    assert net.cut_layers == ["0", "1", "2", "3"]
    assert torch.allclose(net(x), seq(x)) and torch.allclose(net.features(x, "2"), seq[:3](x))
    with pytest.raises(ModelinvError, match="returns shape \\(10,\\) per input; the data has 5 classes"):
        load_user_model(tmp_path / "seq.pt", "torchscript", (1, 28, 28), 5, {}, trust_code=True)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ModelinvError, match="not a TorchScript file"):
        load_user_model(tmp_path / "junk.pt", "torchscript", (1, 28, 28), 10, {}, trust_code=True)


def test_given_weights_refuse_training_defenses(user_lenet):
    cfg = ExperimentConfig(
        target={"arch": "lenet", "weights": str(user_lenet)},
        access={"observe": "features", "layer": "relu2"},
        attack={"name": "inverse-net"},
        defense={"name": "laplace-noise", "params": {"scale": 0.5}},
    )
    with pytest.raises(ModelinvError, match="cannot apply to given weights .*set defense.params.train to false"):
        run_experiment(cfg)
