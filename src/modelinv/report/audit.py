"""An audit's findings, read from its results store: a verdict per attack against the trivial answer, and
the output defenses ranked by the privacy they buy per point of accuracy.

One rule decides every verdict: an attack leaks when ANY of its success metrics beats the same metric of
the trivial answer by at least that metric's margin (MARGINS). The trivial answer is the attacker's mean
image (reconstruction, class inversion) or the most common value of the sensitive column (attributes).
"""

from __future__ import annotations

from typing import Any

from modelinv.attacks.goals import goal
from modelinv.report.tradeoff import trivial
from modelinv.results import defense_label

MARGINS = {"psnr": 3.0, "ssim": 0.1, "attack_acc_top1": 0.2, "knn_ratio": -0.3, "fid_eval": None, "attr_advantage": 0.05, "attr_acc": 0.05}
"""How far a success metric must beat the trivial answer to count as leakage (negative: lower is better); None: not used."""


def margins_beaten(row: dict[str, Any]) -> list[str]:
    """The success metrics of `row` that beat the trivial answer by their margin, e.g. ['attack_acc_top1']."""
    beaten = []
    for metric in goal(row["goal"]).success:
        value, base, margin = row.get(metric), trivial(row, metric), MARGINS.get(metric)
        if margin is None or not isinstance(value, (int, float)) or not isinstance(base, (int, float)):
            continue
        if (value - base >= margin) if margin > 0 else (value - base <= margin):
            beaten.append(metric)
    return beaten


def _pct(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "n/a"


def verdict(rows: list[dict[str, Any]], access: str) -> list[str]:
    """Plain-language findings for the undefended runs, each stating the numbers it rests on and the attack's budget."""
    if not rows:
        return [f"No implemented attack applies to access '{access}': nothing was measured."]
    lines = []
    for row in rows:
        beaten = margins_beaten(row)
        budget = ", ".join(f"{k} {v}" for k, v in (row.get("attack_details") or {}).get("budget", {}).items())
        budget = f" Attack budget: {budget}." if budget else ""
        if row["goal"] == "attribute":
            lines.append(
                f"{'The sensitive attribute can be inferred' if beaten else 'No attribute leakage measured'} from {row['access']} ({row['attack']}): "
                f"{_pct(row['attr_acc'])} of records' sensitive values guessed (most common value {_pct(row['attr_baseline_acc'])}, "
                f"a predictor trained on public data without the model {_pct(row.get('attr_ideal_acc'))}), advantage "
                f"{100 * row['attr_advantage']:+.1f} points.{budget}"
            )
        elif row["goal"] == "class":
            lines.append(
                f"{'Class representatives leak' if beaten else 'No class leakage measured'} ({row['attack']}): "
                f"{_pct(row.get('attack_acc_top1'))} of inversions recognised by an independent classifier (trivial answer "
                f"{_pct(trivial(row, 'attack_acc_top1'))}), knn_ratio {row.get('knn_ratio', float('nan')):.2f} "
                f"(trivial answer {trivial(row, 'knn_ratio') or float('nan'):.2f}; real held-out images about 1).{budget}"
            )
        else:
            lines.append(
                f"{'Inputs can be reconstructed' if beaten else 'No input leakage measured'} from {row['access']} ({row['attack']}): "
                f"PSNR {row['psnr']:.1f} dB (trivial answer {trivial(row, 'psnr'):.1f} dB), SSIM {row['ssim']:.2f} "
                f"(trivial {trivial(row, 'ssim'):.2f}), {_pct(row.get('attack_acc_top1'))} of reconstructions recognised "
                f"(trivial answer {_pct(trivial(row, 'attack_acc_top1'))})"
                + (f"; beats the trivial answer on {', '.join(beaten)}." if beaten else ".")
                + budget
            )
    return lines


def rank_defenses(undefended: list[dict[str, Any]], defended: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per defense: the drop in the most successful attack's headline success and in target accuracy, and their ratio.

    The headline metric is the goal's (report: attacks.goals); for lower-is-better metrics (knn_ratio) the
    drop is the increase. The gain per accuracy point divides the success drop by the accuracy drop in
    percentage points (at least 0.1)."""
    if not undefended:
        return []
    accuracy = undefended[0]["target_test_acc"]

    def success(row: dict[str, Any]) -> float:
        metric = goal(row["goal"]).headline
        return -row[metric] if metric == "knn_ratio" else row[metric]

    plain = {r["attack"]: success(r) for r in undefended}
    by_defense: dict[str, list[dict[str, Any]]] = {}
    for row in defended:
        by_defense.setdefault(defense_label(row), []).append(row)
    ranking = []
    for label, mine in by_defense.items():
        best = max(mine, key=lambda r: success(r) - plain[r["attack"]])
        metric = goal(best["goal"]).headline
        gain = plain[best["attack"]] - success(best)
        cost = 100 * (accuracy - best["target_test_acc"])
        ranking.append(
            {
                "defense": label,
                "strongest_attack": best["attack"],
                "metric": metric,
                "undefended": abs(plain[best["attack"]]),
                "defended": best[metric],
                "privacy_gain": gain,
                "accuracy": best["target_test_acc"],
                "accuracy_cost_points": cost,
                "gain_per_point": gain / max(cost, 0.1),
                "leaks": bool(margins_beaten(best)),
            }
        )
    return sorted(ranking, key=lambda r: -r["gain_per_point"])


def summarize(config: dict[str, Any], access: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """audit.json: the config, the attacks run, the verdict, the trivial answers and the defense ranking."""
    undefended = [r for r in rows if not r.get("defense")]
    return {
        "config": config,
        "attacks": list(dict.fromkeys(r["attack"] for r in undefended)),
        "verdict": verdict(undefended, access),
        "baselines": {r["attack"]: r.get("baselines") for r in undefended},
        "defenses": rank_defenses(undefended, [r for r in rows if r.get("defense")]),
    }
