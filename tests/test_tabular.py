"""Tabular attribute inference: schemas, tabular and scikit-learn targets, fredrikson-attr and inverse-attr,
from configs, `modelinv run` and `modelinv audit`."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import save_file

from helpers import assert_one_line_error, cli, invoke
from modelinv.data import load, make_splits
from modelinv.data.schema import TabularSchema, apply_schema
from modelinv.errors import ModelinvError
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.runner import make_defense, prepare, run_experiment
from modelinv.models import build_model
from modelinv.validation import validate

TARGETS = 1000  # attacked training records: the advantage's standard error is about 1.5 points


def experiment(source: str, attack: dict, arch: str = "logreg", **extra) -> ExperimentConfig:
    access = {"observe": "probs", "white_box": "full" if attack["name"] == "fredrikson-attr-wb" else "none"}
    base = {"data": {"source": source}, "target": {"arch": arch, "train": {"epochs": 10}}, "access": access, "num_targets": TARGETS}
    return validate(ExperimentConfig, {**base, "attack": attack, **extra})


@pytest.fixture(scope="module")
def planted():
    """The logreg target of each planted strength, trained once: strength -> Setting."""
    return {s: prepare(experiment(f"planted:{s}", {"name": "fredrikson-attr"})) for s in (0, 2)}


def advantage(planted, strength, attack, **extra):
    """The result row of `attack` on the trained planted target, under an output defense if `extra` has one."""
    cfg = experiment(f"planted:{strength}", attack, **extra)
    setting = dataclasses.replace(planted[strength], defense=make_defense(cfg, planted[strength].splits.private_train))
    return run_experiment(cfg, setting)[0]


@pytest.mark.parametrize(
    "attack",
    [
        {"name": "fredrikson-attr"},
        {"name": "fredrikson-attr", "params": {"evidence": "label"}},
        {"name": "fredrikson-attr-wb", "params": {"evidence": "label"}},
        {"name": "inverse-attr"},
    ],
    ids=["output", "true-label", "white-box-label", "inverse"],
)
def test_advantage_grows_with_the_planted_dependency_and_vanishes_without_one(planted, attack):
    none, strong = advantage(planted, 0, attack), advantage(planted, 2, attack)
    assert abs(none["attr_advantage"]) <= 0.02
    assert strong["attr_advantage"] >= none["attr_advantage"] + 0.05
    assert strong["attr_acc"] == pytest.approx(strong["attr_baseline_acc"] + strong["attr_advantage"])


def test_observed_scores_reveal_the_attribute_beyond_the_ideal_predictor(planted):
    row = advantage(planted, 2, {"name": "fredrikson-attr"})
    assert row["attr_acc"] > 0.95 and row["attr_ideal_acc"] < 0.7  # the ideal sees the label, not the model's scores
    assert row["attr_precision"] > 0.9 and row["attr_recall"] > 0.9


def test_black_box_queries_every_candidate_and_white_box_queries_nothing(planted):
    black = advantage(planted, 2, {"name": "fredrikson-attr"})
    white = advantage(planted, 2, {"name": "fredrikson-attr-wb"})
    assert (black["queries"], black["gradients"]) == (3 * TARGETS, 0)  # three levels of s per record
    assert (white["queries"], white["gradients"]) == (0, 3 * TARGETS)
    assert white["attr_acc"] == pytest.approx(black["attr_acc"])


def test_label_only_output_defends_the_scores_attack(planted):
    plain = advantage(planted, 2, {"name": "fredrikson-attr"})
    defended = advantage(planted, 2, {"name": "fredrikson-attr"}, defense={"name": "label-only"})
    assert defended["attr_advantage"] < plain["attr_advantage"] - 0.2


def test_white_box_variant_refuses_a_black_box_threat_model(planted):
    cfg = experiment("planted:2", {"name": "fredrikson-attr-wb"}, access={"observe": "probs"})
    with pytest.raises(ModelinvError, match="'fredrikson-attr-wb' needs white-box access to the full model"):
        run_experiment(cfg, planted[2])


def test_scikit_learn_tree_gives_scikit_learn_scores_and_reloads_from_the_cache():
    from sklearn.tree import DecisionTreeClassifier

    cfg = experiment("planted:2", {"name": "fredrikson-attr"}, arch="sk-tree")
    first, again = prepare(cfg), prepare(cfg)
    assert not first.target_meta["cached"] and again.target_meta["cached"]
    train, public = first.splits.private_train, first.splits.public
    fitted = DecisionTreeClassifier(max_depth=6, min_samples_leaf=5, random_state=0).fit(train.x.numpy(), train.y.numpy())
    expected = torch.from_numpy(fitted.predict_proba(public.x.numpy())).float()
    assert torch.allclose(first.target(public.x).softmax(1), expected, atol=1e-4)
    assert torch.equal(first.target(public.x), again.target(public.x))
    assert run_experiment(cfg, first)[0]["attr_advantage"] > 0.3


def test_training_defenses_are_refused_for_scikit_learn_models():
    cfg = experiment("planted:2", {"name": "fredrikson-attr"}, arch="sk-logreg", defense={"name": "dp-sgd", "params": {"noise_multiplier": 1.0}})
    with pytest.raises(ModelinvError, match="fitted by scikit-learn"):
        prepare(cfg)


def test_breast_cancer_with_a_binned_numeric_sensitive_column():
    tabular = {"sensitive": "mean radius", "bins": [6, 13, 30]}
    data = apply_schema(load("breast-cancer"), TabularSchema(**tabular))
    assert data.sensitive.levels == ("[6, 13)", "[13, 30]")
    cfg = experiment("breast-cancer", {"name": "fredrikson-attr-wb"}, data={"source": "breast-cancer", "tabular": tabular})
    row = run_experiment(cfg)[0]
    assert row["num_targets"] == len(make_splits("same-distribution", data, seed=0).private_train)
    assert row["attr_advantage"] > 0.2


# --- a user's CSV and model ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def user_csv(tmp_path_factory):
    """planted:2 as a user's CSV: a text-valued sensitive column and a named label column, plus its schema."""
    data = load("planted:2")
    path = tmp_path_factory.mktemp("user") / "records.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["x1", "x2", "x3", "x4", "smoking", "outcome"])
        for row, y in zip(data.x.tolist(), data.y.tolist()):
            writer.writerow([f"{v:.5f}" for v in row[:4]] + [("never", "former", "current")[int(row[4])], y])
    schema = {"sensitive": "smoking", "categorical": {"smoking": ["never", "former", "current"]}}
    (path.parent / "schema.yaml").write_text(yaml.safe_dump(schema))
    return path, schema


def test_a_config_runs_on_a_csv_from_modelinv_run_reproducibly(user_csv, tmp_path, capsys):
    path, schema = user_csv
    cfg = {
        "data": {"source": f"csv:{path}", "label_column": "outcome", "tabular": schema},
        "target": {"arch": "tabular-mlp", "train": {"epochs": 5}},
        "access": {"observe": "probs"},
        "attack": {"name": "fredrikson-attr"},
        "num_targets": 500,
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    rows = []
    for out in ("a", "b"):
        code, _, err = cli(capsys, "run", tmp_path / "exp.yaml", "--out", tmp_path / out)
        assert code == 0, err
        (run,) = (tmp_path / out / "runs").iterdir()
        rows.append(json.loads((run / "results.json").read_text()))
    assert rows[0]["attr_advantage"] > 0.3 and rows[0]["num_targets"] == 500
    assert {k: rows[0][k] for k in rows[0] if k.startswith("attr_")} == {k: rows[1][k] for k in rows[1] if k.startswith("attr_")}
    assert (run / "reconstructions.safetensors").is_file()


@pytest.mark.parametrize(
    "tabular, field",
    [
        ({"sensitive": "smoker", "categorical": {"smoking": ["never", "former", "current"]}}, "data.tabular.sensitive: csv:records.csv has no column 'smoker'"),
        ({"sensitive": "smoking", "categorical": {"smoking": ["never", "current"]}}, "data.tabular.categorical.smoking: value 'former'"),
        ({"sensitive": "smoking"}, "data.tabular.categorical: column 'smoking'"),
        ({"sensitive": "x1", "categorical": {"smoking": ["never", "former", "current"]}}, "data.tabular.bins: the sensitive column 'x1' is numeric"),
        ({"sensitive": "x1", "categorical": {"smoking": ["never", "former", "current"]}, "bins": [-1, 0, 1]}, "data.tabular.bins: column 'x1' has value"),
        ({"sensitive": "smoking", "categorical": {"smoking": ["never", "former", "current"]}, "positive": "daily"}, "data.tabular.positive"),
    ],
)
def test_schema_errors_name_the_column(user_csv, tmp_path, capsys, tabular, field):
    path, _ = user_csv
    cfg = {"data": {"source": f"csv:{path}", "label_column": "outcome", "tabular": tabular}, "access": {"observe": "probs"}, "target": {"arch": "logreg"}, "attack": {"name": "fredrikson-attr"}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    code, _, err = cli(capsys, "run", tmp_path / "exp.yaml", "--out", tmp_path / "out")
    assert_one_line_error(code, err, field)


def test_a_missing_value_names_its_column(user_csv, tmp_path, capsys):
    path, schema = user_csv
    lines = path.read_text().splitlines()
    lines[3] = ",".join(lines[3].split(",")[:4] + ["NA", lines[3].split(",")[5]])
    bad = tmp_path / "records.csv"
    bad.write_text("\n".join(lines) + "\n")
    cfg = {"data": {"source": f"csv:{bad}", "label_column": "outcome", "tabular": schema}, "access": {"observe": "probs"}, "target": {"arch": "logreg"}, "attack": {"name": "fredrikson-attr"}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    code, _, err = cli(capsys, "run", tmp_path / "exp.yaml", "--out", tmp_path / "out")
    assert_one_line_error(code, err, "missing value in column 'smoking' at row 3")


@pytest.fixture(scope="module")
def user_model(user_csv):
    """A logreg a user trained on the CSV with a plain torch loop, saved with safetensors."""
    path, schema = user_csv
    data = apply_schema(load(f"csv:{path}", label_column="outcome"), TabularSchema(**schema))
    torch.manual_seed(0)
    model = build_model("logreg", data.input_shape, data.num_classes)
    model.fit_inputs(data.x)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        optimiser.zero_grad()
        F.cross_entropy(model(data.x), data.y).backward()
        optimiser.step()
    weights = path.parent / "logreg.safetensors"
    save_file(model.state_dict(), str(weights))
    return weights


def test_audit_of_a_users_csv_and_model(user_csv, user_model, tmp_path, capsys):
    path, _ = user_csv
    args = ["audit", "--model", user_model, "--arch", "logreg", "--data", f"csv:{path}", "--label-column", "outcome"]
    code, out, err = cli(capsys, *args, "--tabular", path.parent / "schema.yaml", "--access", "probs", "--num-targets", 500, "--out", tmp_path / "audit")
    assert code == 0, err
    summary = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert summary["attacks"] == ["fredrikson-attr", "inverse-attr"]
    assert all(line.startswith("The sensitive attribute can be inferred") for line in summary["verdict"])
    plain, label_only = (next(o for o in summary["outcomes"] if o["defense"] == name) for name in ("none", "label-only"))
    advantage = {name: max(a["attr_advantage"]["mean"] for a in o["attacks"].values()) for name, o in (("none", plain), ("label-only", label_only))}
    assert advantage["label-only"] < advantage["none"] - 0.2
    run_dir = next(p.parent for p in (tmp_path / "audit" / "runs").glob("*/results.json") if json.loads(p.read_text())["defense"] is None)
    assert invoke("run", run_dir / "config.yaml", "--out", tmp_path / "rerun") == 0
    (rerun_dir,) = (tmp_path / "rerun" / "runs").iterdir()
    rerun, original = (json.loads(p.read_text()) for p in (rerun_dir / "results.json", run_dir / "results.json"))
    assert rerun["attr_acc"] == original["attr_acc"] and f"{rerun['attr_acc']:.0%}" in out


def test_audit_refuses_image_attacks_on_a_table(user_csv, user_model, tmp_path, capsys):
    path, _ = user_csv
    args = ["audit", "--model", user_model, "--arch", "logreg", "--data", f"csv:{path}", "--label-column", "outcome", "--tabular", path.parent / "schema.yaml"]
    code, _, err = cli(capsys, *args, "--access", "probs", "--attack", "inverse-net", "--out", tmp_path / "audit")
    assert_one_line_error(code, err, "attack 'inverse-net' needs data without a sensitive column")
