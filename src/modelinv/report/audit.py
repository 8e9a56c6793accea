"""Findings read from a results store: a verdict per attack against its trivial answer, the budget each attack
was given, and which defense, if any, brings the attacks down to the trivial answer and at what cost.

The rule (one for every goal, stated in RULE): an attack leaks when ANY of its success metrics (attacks.goals)
clearly beats the same metric of the trivial answer. "Clearly" means both:
- by at least the metric's margin (MARGINS), e.g. 3 dB of PSNR, 0.1 of SSIM, 20 points of judge accuracy;
- with several seeds, by non-overlapping 95% intervals (report.aggregate), so a difference inside the seed-to-seed
  noise is not called leakage. With one seed only the margin applies.
The trivial answer is the attacker's mean image (reconstruction, class inversion), the most common value of the
sensitive column (attributes), or the text goals' answers named in attacks.goals (`Goal.trivial`). A defense
protects when, under it, no attack leaks by the same rule: it brings every attack down to the trivial answer
within the margin and the intervals.

Defenses are compared on the privacy-utility plane: accuracy against leakage, where leakage is the largest
excess of any success metric over its trivial answer, in units of its margin (1 or more: leaks). The Pareto
front holds the defenses no other defense beats on both; the answer to "what should I deploy" is the
cheapest defense (least accuracy lost) that protects, or a plain statement that none of those tried does.
"""

from __future__ import annotations

import re
from typing import Any

from modelinv.attacks import ATTACKS
from modelinv.attacks.goals import goal
from modelinv.errors import ModelinvError
from modelinv.report.aggregate import Interval, compare, fmt, groups, metric_interval, target_accuracy
from modelinv.report.baselines import trivial
from modelinv.results import defense_label

MARGINS = {
    "psnr": 3.0,
    "ssim": 0.1,
    "attack_acc_top1": 0.2,
    "knn_ratio": -0.3,
    "fid_eval": None,
    "attr_advantage": 0.05,
    "attr_acc": 0.05,
    "bow_f1": 0.05,
    "bow_sensitive_recall": 0.05,
    "cand_advantage": 0.05,
    "cand_top1": 0.05,
    "exposure": 2.0,
    "exposure_inserted": None,
    "extraction": 0.1,
    "extraction_inserted": None,
}
"""How far a success metric must beat the trivial answer to count as leakage (negative: lower is better); None: not used."""

RULE = (
    "Rule: an attack leaks when any of its success metrics beats the trivial answer (the attacker's mean image, or the "
    "most common value) by at least its margin (PSNR 3 dB, SSIM 0.1, recognised 20 points, knn_ratio 0.3 lower, "
    "attribute accuracy 5 points, exposure 2 bits, secrets extracted 10 points) and, with several seeds, by non-overlapping 95% intervals. A defense protects when "
    "no attack leaks under it."
)

BUDGET = re.compile(r"epochs|iterations|steps|restarts|episodes|generations|population|max_iters")
"""Attack parameters that set how much effort the attack gets (training epochs, optimisation steps, searches)."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def excess(runs: list[dict[str, Any]], metric: str) -> float | None:
    """How far the runs' mean `metric` beats the mean trivial answer, in units of the metric's margin (1: by
    exactly the margin; 0 or less: no better than the trivial answer); None when not measured or not judged."""
    margin = MARGINS.get(metric)
    attack, base = metric_interval(runs, metric), metric_interval(runs, metric, lambda r: trivial(r, metric))
    if margin is None or attack is None or base is None:
        return None
    return (attack.mean - base.mean) / margin


def beats(runs: list[dict[str, Any]], metric: str) -> bool:
    """True when the runs (one setting, one row per seed) clearly beat the trivial answer on `metric` (RULE)."""
    size = excess(runs, metric)
    if size is None or size < 1:
        return False
    attack, base = metric_interval(runs, metric), metric_interval(runs, metric, lambda r: trivial(r, metric))
    if attack.k >= 2 and base.k >= 2:
        return compare(attack, base, higher_is_better=MARGINS[metric] > 0) == "better"
    return True


def metrics_beaten(runs: list[dict[str, Any]]) -> list[str]:
    """The success metrics of one setting's runs (seeds pooled) that clearly beat the trivial answer."""
    return [m for m in goal(runs[0]["goal"]).success if beats(runs, m)]


def margins_beaten(row: dict[str, Any]) -> list[str]:
    """The success metrics of one run that beat the trivial answer by their margin, e.g. ['attack_acc_top1']."""
    return metrics_beaten([row])


def leakage(runs: list[dict[str, Any]]) -> float:
    """The largest excess over the trivial answer of any success metric, in margins (0 when none is measured)."""
    sizes = [excess(runs, m) for m in goal(runs[0]["goal"]).success]
    return max([s for s in sizes if s is not None], default=0.0)


def budget(row: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The attack's effort parameters as (name, value used, the attack's default), e.g. [('epochs', 8, 40)].

    The value used is the run's configured parameter (config attack.params), else what the attack reported
    (attack_details: rMLE resolves its iterations from the layer), else the default. The default is the
    parameter's, else the one the attack reported under attack_details `defaults` (rMLE: the cut's schedule)."""
    try:
        fields = ATTACKS.get(row["attack"]).Params.model_fields
    except (ModelinvError, AttributeError):
        return []
    given = (((row.get("config") or {}).get("attack") or {}).get("params")) or {}
    details = row.get("attack_details") or {}
    out = []
    for name, field in fields.items():
        if not BUDGET.search(name):
            continue
        used = given.get(name, details.get(name, field.default))
        default = field.default if _number(field.default) else (details.get("defaults") or {}).get(name)
        if _number(used):
            out.append((name, used, default if _number(default) else None))
    return out


def reduced(row: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The effort parameters set below the attack's defaults."""
    return [(name, used, default) for name, used, default in budget(row) if default is not None and used < default]


def _count(value: Any) -> str:
    return f"{int(value):,}" if _number(value) and float(value).is_integer() else fmt(value)


def budget_text(runs: list[dict[str, Any]]) -> str:
    """' Attack budget: epochs 8 (default 40: reduced), 6,400 queries.' for the runs of one setting ('' if nothing is known)."""
    row = runs[0]
    parts = [f"{name} {_count(used)}" + (f" (default {_count(default)}: reduced)" if default is not None and used < default else "")
             for name, used, default in budget(row)]
    for key, words in (("queries", "queries to the model"), ("gradients", "gradient evaluations")):
        counts = [r.get(key) for r in runs if _number(r.get(key))]
        if counts and max(counts) > 0:
            parts.append(f"{_count(max(counts))} {words}")
    return f" Attack budget: {', '.join(parts)}." if parts else ""


def _pct(value: Any) -> str:
    return f"{value:.0%}" if _number(value) else "n/a"


FORMATS = {"psnr": lambda v: f"{v:.1f} dB", "ssim": lambda v: f"{v:.2f}", "knn_ratio": lambda v: f"{v:.2f}"}
PERCENT = {"attack_acc_top1", "attack_acc_top5", "attr_acc", "attr_baseline_acc", "attr_ideal_acc", "cand_top1", "cand_top5"}


def show(iv: Interval | None, metric: str) -> str:
    """One measured value as a verdict prints it: PSNR in dB to 0.1, SSIM to 0.01, accuracies in percent,
    anything else to 3 significant digits; with several seeds its 95% interval follows in brackets."""
    if iv is None:
        return "n/a"
    one = _pct if metric in PERCENT else FORMATS.get(metric, fmt)
    if iv.low is None:
        return one(iv.mean)
    unit = " dB" if metric == "psnr" else ""
    bare = [one(v).removesuffix(unit) for v in (iv.mean, iv.low, iv.high)]
    return f"{bare[0]} [{bare[1]}, {bare[2]}]{unit}"


def _pair(runs: list[dict[str, Any]], metric: str) -> tuple[str, str]:
    return show(metric_interval(runs, metric), metric), show(metric_interval(runs, metric, lambda r: trivial(r, metric)), metric)


def finding(runs: list[dict[str, Any]], access: str | None = None) -> str:
    """The verdict on one attack in one setting (its runs over seeds): leaks or not by RULE, the numbers it
    rests on beside their trivial answers, the seeds, and the attack's budget (flagged when reduced)."""
    row = runs[0]
    beaten = metrics_beaten(runs)
    where = access or row.get("access")
    seeds = f" Over {len(runs)} seeds (mean [95% interval])." if len(runs) > 1 else ""
    if row["goal"] == "attribute":
        acc = show(metric_interval(runs, "attr_acc"), "attr_acc")
        text = (
            f"{'The sensitive attribute can be inferred' if beaten else 'No attribute leakage measured'} from {where} ({row['attack']}): "
            f"{acc} of records' sensitive values guessed (most common value {_pct(row.get('attr_baseline_acc'))}, "
            f"a predictor trained on public data without the model {_pct(row.get('attr_ideal_acc'))}), advantage "
            f"{100 * (metric_interval(runs, 'attr_advantage') or Interval(float('nan'), None, None, 0)).mean:+.1f} points."
        )
    elif row["goal"] == "class":
        (recognised, recognised0), (knn, knn0) = _pair(runs, "attack_acc_top1"), _pair(runs, "knn_ratio")
        text = (
            f"{'Class representatives leak' if beaten else 'No class leakage measured'} ({row['attack']}): "
            f"{recognised} of inversions recognised by an independent classifier (trivial answer {recognised0}), "
            f"knn_ratio {knn} (trivial answer {knn0}; real held-out images about 1)"
            + (f"; beats the trivial answer on {', '.join(beaten)}." if beaten else ".")
        )
    elif row["goal"] == "reconstruct":
        (psnr, psnr0), (ssim, ssim0), (recognised, recognised0) = (_pair(runs, m) for m in ("psnr", "ssim", "attack_acc_top1"))
        text = (
            f"{'Inputs can be reconstructed' if beaten else 'No input leakage measured'} from {where} ({row['attack']}): "
            f"PSNR {psnr} (trivial answer {psnr0}), SSIM {ssim} (trivial {ssim0}), {recognised} of reconstructions recognised "
            f"(trivial answer {recognised0})" + (f"; beats the trivial answer on {', '.join(beaten)}." if beaten else ".")
        )
    else:
        numbers = ", ".join(f"{m} {a} (trivial answer {b})" for m in goal(row["goal"]).success if m in row for a, b in [_pair(runs, m)])
        text = (
            f"{'Leakage measured' if beaten else 'No leakage measured'} from {where} ({row['attack']}: {goal(row['goal']).summary}): "
            f"{numbers}" + (f"; beats the trivial answer on {', '.join(beaten)}." if beaten else ".")
        )
    text += seeds + budget_text(runs)
    cut = reduced(row)
    if cut and not beaten:
        text += (f" The attack ran below its default effort ({', '.join(f'{n} {_count(u)} of {_count(d)}' for n, u, d in cut)}): "
                 "a full-strength attack may leak more, so this is no evidence of safety.")
    return text


def setting(row: dict[str, Any]) -> tuple:
    """What the runs of one setting share, all but the seed: model, data, layer, attack and defense."""
    return (row.get("data"), row.get("model"), row.get("layer"), row["attack"], defense_label(row))


def verdict(rows: list[dict[str, Any]], access: str) -> list[str]:
    """Plain-language findings for the undefended runs, one per attack (seeds pooled), each stating the numbers
    it rests on and the attack's budget."""
    if not rows:
        return [f"No implemented attack applies to access '{access}': nothing was measured."]
    return [finding(runs, runs[0].get("access")) for runs in groups(rows, setting).values()]


def defense_outcomes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per defense of one audit (one model, data and access; undefended rows among `rows`): its accuracy (once
    per target: report.aggregate.target_accuracy) and cost in points against the undefended target, each
    attack's success metrics beside their trivial answers, whether it protects (RULE), its leakage in margins,
    and whether it is on the privacy-utility Pareto front. The undefended model is the first record
    ('none'); the defenses follow, cheapest first."""
    plain = [r for r in rows if not r.get("defense")]
    base, _ = target_accuracy(plain)
    records = []
    for label, mine in groups(rows, defense_label).items():
        accuracy, spread = target_accuracy(mine)
        attacks, leaking, size = {}, {}, 0.0
        for attack, runs in groups(mine, lambda r: r["attack"]).items():
            metrics = {}
            for m in goal(runs[0]["goal"]).success:
                iv, iv0 = metric_interval(runs, m), metric_interval(runs, m, lambda r, m=m: trivial(r, m))
                if iv is not None:
                    metrics[m] = {"mean": iv.mean, "low": iv.low, "high": iv.high, "trivial": iv0.mean if iv0 else None}
            attacks[attack] = metrics
            beaten = metrics_beaten(runs)
            if beaten:
                leaking[attack] = beaten
            size = max(size, leakage(runs))
        records.append(
            {
                "defense": label,
                "name": mine[0].get("defense"),
                "accuracy": accuracy.mean if accuracy else None,
                "accuracy_low": accuracy.low if accuracy else None,
                "accuracy_high": accuracy.high if accuracy else None,
                "accuracy_spread": spread,
                "accuracy_cost_points": 100 * (base.mean - accuracy.mean) if base and accuracy else None,
                "attacks": attacks,
                "leaking": leaking,
                "protects": not leaking,
                "leakage": size,
                "seeds": len({r.get("seed") for r in mine}),
            }
        )
    for record in records:
        record["pareto"] = not any(_dominates(other, record) for other in records if other is not record)
    return sorted(records, key=lambda r: (r["name"] is not None, r["accuracy_cost_points"] if r["accuracy_cost_points"] is not None else float("inf")))


def _dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["accuracy"] is None or b["accuracy"] is None:
        return False
    return a["accuracy"] >= b["accuracy"] and a["leakage"] <= b["leakage"] and (a["accuracy"] > b["accuracy"] or a["leakage"] < b["leakage"])


def cheapest(outcomes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The defense that protects at the least accuracy cost, or None when none of those tried protects."""
    return next((o for o in outcomes if o["name"] is not None and o["protects"]), None)


def _leaves(record: dict[str, Any]) -> str:
    parts = []
    for attack, metrics in record["leaking"].items():
        numbers = record["attacks"][attack]
        shown = ", ".join(
            f"{m} {show(Interval(numbers[m]['mean'], None, None, 1), m)} (trivial {show(Interval(numbers[m]['trivial'], None, None, 1), m)})"
            for m in metrics
        )
        parts.append(f"{attack} {shown}")
    return "; ".join(parts)


def _acc(value: Any) -> str:
    return f"{value:.1%}" if _number(value) else "n/a"


def protection(outcomes: list[dict[str, Any]], floor: float | None = None) -> str | None:
    """The answer to "what is the cheapest defense that brings the attacks down to the trivial answer, and what
    does it cost?", in one sentence; None when no defense was tried."""
    plain = next((o for o in outcomes if o["name"] is None), None)
    defended = [o for o in outcomes if o["name"] is not None]
    if not defended:
        return None
    if plain is not None and plain["protects"]:
        return "No attack beats the trivial answer without a defense at the budgets tried, so no defense is needed against them."
    best = cheapest(outcomes)
    base = f", undefended {_acc(plain['accuracy'])}" if plain else ""
    front = sum(o["pareto"] for o in defended)
    if best is not None:
        return (
            f"Cheapest defense that brings every attack down to the trivial answer: {best['defense']}, costing "
            f"{fmt(best['accuracy_cost_points'])} accuracy point{'' if fmt(best['accuracy_cost_points']) == '1' else 's'} (target accuracy {_acc(best['accuracy'])}{base}); "
            f"{len(defended)} defenses tried, {front} on the privacy-utility front."
        )
    strongest = min(defended, key=lambda o: o["leakage"])
    stop = f" or below the accuracy floor {floor:.1%}" if floor is not None else ""
    return (
        f"None of the {len(defended)} defenses tried brings the attacks down to the trivial answer: the most protective, "
        f"{strongest['defense']} (target accuracy {_acc(strongest['accuracy'])}{base}), still leaves {_leaves(strongest)}. "
        f"Stronger settings{stop}, or a training-time defense, would be needed."
    )


def summarize(config: dict[str, Any], access: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """audit.json: the config, the attacks run, the verdict (one line per attack), the answer on defenses
    (`protection`: the cheapest defense reaching the trivial answer, or that none does; the report adds it to
    its verdict), the trivial answers, the defenses with their cost and protection (`outcomes`, cheapest
    first) and the cheapest protecting defense (`cheapest`, None when none protects). Defenses are not ranked
    by privacy gained per accuracy point: that puts negligible, free defenses first.

    An `accuracy_floor` in the config (set by the audit driver when it extends strengths) is quoted when no
    defense protects."""
    undefended = [r for r in rows if not r.get("defense")]
    outcomes = defense_outcomes(rows) if undefended else []
    answer = protection(outcomes, config.get("accuracy_floor"))
    best = cheapest(outcomes)
    return {
        "config": config,
        "attacks": list(dict.fromkeys(r["attack"] for r in undefended)),
        "verdict": verdict(undefended, access),
        "baselines": {r["attack"]: r.get("baselines") for r in undefended},
        "outcomes": outcomes,
        "cheapest": best["defense"] if best else None,
        "protection": answer,
    }
