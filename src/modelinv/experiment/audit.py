"""Audit a user's own trained model: every attack its declared access allows, against trivial baselines, and
the output defenses that could be bolted on, ranked by privacy bought per point of accuracy.

The audit is a list of ordinary experiments (the user's weights as `target.weights`), run by the same
runner as `modelinv run` and stored like a sweep, so each number in the report can be reproduced with
`modelinv run DIR/runs/<run_id>/config.yaml`. Nothing is retrained: the defenses measured are the
output defenses, applied to the given model at inference (`train: false`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from modelinv.attacks import ATTACKS
from modelinv.errors import AccessDenied, ModelinvError
from modelinv.experiment.config import DataConfig, DefenseConfig, ExperimentConfig, ModelConfig, Strict
from modelinv.experiment.grid import run_id
from modelinv.experiment.leaderboard import defense_label
from modelinv.experiment.results import ResultsStore
from modelinv.experiment.runner import build_threat, check_names, make_defense, prepare, run_experiment, write_json, write_run
from modelinv.metrics import MetricInputs, compute

# Output defenses tried by default, per observation, at three strengths each (weakest first).
DEFAULT_DEFENSES: dict[str, list[tuple[str, str, list[Any]]]] = {
    "features": [("laplace-noise", "scale", [0.1, 0.5, 1.0]), ("gaussian-noise", "sigma", [0.1, 0.5, 1.0])],
    "probs": [("round", "decimals", [3, 2, 1]), ("top-k", "k", [3, 2, 1]), ("label-only", "", [None])],
    "logits": [("round", "decimals", [2, 1, 0]), ("label-only", "", [None])],
    "label": [],
}
# The number that says how well an attack of each goal succeeds, higher meaning more leakage.
SUCCESS = {"reconstruct": "ssim", "class": "attack_acc_top1", "attribute": "attr_acc"}


class AuditConfig(Strict):
    model: str = Field(description="the user's trained model: safetensors weights of `arch`, or a TorchScript file")
    arch: str = Field(description="a registered architecture, or 'torchscript'")
    data: DataConfig
    access: str = Field(description="what the attacker sees: features[:LAYER], probs, logits or label")
    white_box: Literal["none", "client", "server", "full"] = "none"
    seed: int = 0
    attacks: list[str] | None = Field(None, description="default: every attack the access allows")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="attack name -> parameters")
    defenses: list[DefenseConfig] | None = Field(None, description="default: the output defenses for the access, 3 strengths each")
    num_targets: int = Field(64, ge=1)
    per_class: int = Field(5, ge=1)
    evaluator: ModelConfig | None = Field(None, description="the judge; default: as in experiments")

    def experiment(self, attack: str, defense: DefenseConfig | None = None) -> ExperimentConfig:
        observe, _, layer = self.access.partition(":")
        if observe not in ("features", "probs", "logits", "label"):
            raise ModelinvError(f"invalid access '{self.access}': use features[:LAYER], probs, logits or label")
        return ExperimentConfig(
            seed=self.seed,
            data=self.data,
            target={"arch": self.arch, "weights": self.model},
            access={"observe": observe, "layer": layer or None, "white_box": self.white_box},
            attack={"name": attack, "params": self.params.get(attack, {})},
            defense=defense,
            num_targets=self.num_targets,
            per_class=self.per_class,
            evaluator=self.evaluator,
        )

    def output_defenses(self) -> list[DefenseConfig]:
        if self.defenses is not None:
            return self.defenses
        observe = self.access.partition(":")[0]
        grid = []
        for name, param, values in DEFAULT_DEFENSES[observe]:
            for value in values:
                params = {param: value} if param else {}
                grid.append(DefenseConfig(name=name, params={**params, "train": False} if observe == "features" else params))
        return grid


def applicable_attacks(cfg: AuditConfig, setting) -> list[str]:
    """The registered attacks (or the requested ones) that the declared access allows: on a table with a
    sensitive column, the attribute-inference attacks; on any other data, the others."""
    names = cfg.attacks or ATTACKS.names()
    attributes = getattr(setting.splits.private_train, "sensitive", None) is not None
    chosen = []
    for name in names:
        experiment = cfg.experiment(name)
        attack, _ = check_names(experiment)
        threat, _ = build_threat(experiment, setting.target)
        try:
            if (attack.goal == "attribute") != attributes:
                needs = "tabular data with a sensitive column (data.tabular)" if attack.goal == "attribute" else "data without a sensitive column"
                raise AccessDenied(f"attack '{name}' needs {needs}")
            threat.require(name, attack.observes, attack.white_box)
        except AccessDenied as err:
            if cfg.attacks:
                raise ModelinvError(str(err)) from None
            continue
        chosen.append(name)
    return chosen


def baseline(row: dict[str, Any], images: dict[str, torch.Tensor], setting) -> dict[str, float]:
    """The same metrics for a trivial answer: the mean attacker image for every target (no model needed)."""
    guess = setting.splits.public.x.mean(0).expand_as(images["reconstructions"])
    names = [m for m in ("psnr", "ssim", "attack_acc_top1", "knn_ratio") if m in row]
    inputs = MetricInputs(
        guess, images["labels"], truth=images.get("originals"), evaluator=setting.evaluator, private=setting.splits.private_train, holdout=setting.splits.private_test
    )
    return compute(names, inputs)


def verdict(cfg: AuditConfig, rows: list[dict[str, Any]], baselines: dict[str, dict[str, float]]) -> list[str]:
    """Plain-language findings, each stating the measured numbers it rests on."""
    if not rows:
        return [f"No implemented attack applies to access '{cfg.access}' with white-box '{cfg.white_box}': nothing was measured."]
    lines = []
    for row in rows:
        base = baselines[row["attack"]]
        if row["goal"] == "attribute":
            leaks = row["attr_advantage"] >= 0.05
            lines.append(
                f"{'The sensitive attribute can be inferred' if leaks else 'Little attribute leakage measured'} from {row['access']} ({row['attack']}): "
                f"{row['attr_acc']:.0%} of records' sensitive values guessed (most common value {row['attr_baseline_acc']:.0%}, "
                f"a predictor of it trained on public data without the model {row['attr_ideal_acc']:.0%}), advantage {100 * row['attr_advantage']:+.1f} points."
            )
            continue
        if row["goal"] == "class":
            leaks = row["attack_acc_top1"] >= base["attack_acc_top1"] + 0.2
            lines.append(
                f"{'Class representatives leak' if leaks else 'Little class leakage measured'} ({row['attack']}): "
                f"{row['attack_acc_top1']:.0%} of inversions recognised by an independent classifier (trivial answer "
                f"{base['attack_acc_top1']:.0%}), knn_ratio {row['knn_ratio']:.2f}."
            )
            continue
        gain = row["psnr"] - base["psnr"]
        leaks = gain >= 3 and row.get("attack_acc_top1", 0) >= base.get("attack_acc_top1", 0) + 0.2
        what = f"{row['access']}" if row["access"] else cfg.access
        lines.append(
            f"{'Inputs can be reconstructed' if leaks else 'Little input leakage measured'} from {what} ({row['attack']}): "
            f"PSNR {row['psnr']:.1f} dB (trivial answer {base['psnr']:.1f} dB), SSIM {row['ssim']:.2f}, "
            f"{row.get('attack_acc_top1', float('nan')):.0%} of reconstructions recognised (trivial answer "
            f"{base.get('attack_acc_top1', float('nan')):.0%})."
        )
    return lines


def rank_defenses(undefended: list[dict[str, Any]], defended: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per defense: the drop in the most successful attack's success and in target accuracy, and their ratio.

    Success is SSIM for reconstruction attacks and judge top-1 accuracy for class attacks; the gain per
    accuracy point divides the success drop by the accuracy drop in percentage points (at least 0.1)."""
    if not undefended:
        return []
    accuracy = undefended[0]["target_test_acc"]
    worst = {r["attack"]: r[SUCCESS[r["goal"]]] for r in undefended}
    by_defense: dict[str, list[dict[str, Any]]] = {}
    for row in defended:
        by_defense.setdefault(defense_label(row), []).append(row)
    ranking = []
    for label, mine in by_defense.items():
        best = max(mine, key=lambda r: r[SUCCESS[r["goal"]]] - worst[r["attack"]])
        gain = worst[best["attack"]] - best[SUCCESS[best["goal"]]]
        cost = 100 * (accuracy - best["target_test_acc"])
        ranking.append(
            {
                "defense": label,
                "strongest_attack": best["attack"],
                "metric": SUCCESS[best["goal"]],
                "undefended": worst[best["attack"]],
                "defended": best[SUCCESS[best["goal"]]],
                "privacy_gain": gain,
                "accuracy": best["target_test_acc"],
                "accuracy_cost_points": cost,
                "gain_per_point": gain / max(cost, 0.1),
            }
        )
    return sorted(ranking, key=lambda r: -r["gain_per_point"])


def run_audit(cfg: AuditConfig, out: Path) -> dict[str, Any]:
    """Run the audit into `out` (results store, per-run artifacts, audit.json, report.html); return the summary."""
    from modelinv.report.html import write_report

    store = ResultsStore(out)
    setting = prepare(cfg.experiment(cfg.attacks[0] if cfg.attacks else ATTACKS.names()[0]))
    attacks = applicable_attacks(cfg, setting)
    undefended, defended, baselines = [], [], {}
    for defense in [None, *(cfg.output_defenses() if attacks else [])]:
        defended_setting = setting
        if defense is not None:
            defended_setting = dataclasses.replace(setting, defense=make_defense(cfg.experiment(attacks[0], defense), setting.splits.private_train))
        for attack in attacks:
            experiment = cfg.experiment(attack, defense)
            row, images = run_experiment(experiment, defended_setting)
            key = run_id(experiment)
            write_run(out / "runs" / key, experiment, row, images)
            store.record(key, experiment, row, out / "runs" / key)
            (defended if defense else undefended).append(row)
            if defense is None:
                baselines[attack] = baseline(row, images, setting)
    summary = {
        "config": cfg.model_dump(mode="json"),
        "attacks": attacks,
        "verdict": verdict(cfg, undefended, baselines),
        "baselines": baselines,
        "defenses": rank_defenses(undefended, defended),
    }
    write_json(out / "audit.json", summary)
    write_report(out, title=f"Model-inversion audit of {Path(cfg.model).name}", verdict=summary["verdict"], defense_ranking=summary["defenses"])
    store.close()
    return summary


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML or JSON file holding a mapping; errors name the file."""
    import yaml

    if not Path(path).is_file():
        raise ModelinvError(f"{what} not found: {path}")
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError:
        raise ModelinvError(f"{what} {path} is not valid YAML or JSON") from None
    if not isinstance(raw, dict):
        raise ModelinvError(f"{what} {path} must hold a mapping")
    return raw


def load_params(path: Path | None) -> dict[str, dict[str, Any]]:
    """Attack parameters from a YAML or JSON file mapping attack name to parameters."""
    if path is None:
        return {}
    raw = read_mapping(path, "parameter file")
    if not all(isinstance(v, dict) for v in raw.values()):
        raise ModelinvError(f"parameter file {path} must map attack names to parameter mappings")
    return raw

