"""The privacy-utility trade-off of one defense swept over strengths, rendered from a results store's rows:
per strength, target accuracy and each attack's success (mean and 95% interval over seeds), beside the
trivial answer (the attacker's mean image, or the most common attribute value) scored the same way, and a
judgement per strength by the audit's rule (report.audit.RULE): does any attack still beat the trivial answer?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelinv.attacks.goals import goal
from modelinv.metrics import METRICS
from modelinv.report.aggregate import Interval, fmt, groups, metric_interval, target_accuracy
from modelinv.report.audit import MARGINS, RULE, budget_text, defense_outcomes, metrics_beaten, protection
from modelinv.report.baselines import trivial
from modelinv.report.markdown import table
from modelinv.report.plots import Panel, tradeoff_figure

__all__ = ["by_strength", "judgement", "markdown", "plot", "series", "strength"]


def strength(row: dict[str, Any], param: str) -> Any:
    """The swept parameter's value of a row; None for the undefended reference."""
    return None if not row.get("defense") else (row.get("defense_params") or {}).get(param)


def series(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(attack, metric) pairs that measure attack success, in the order the attacks were configured."""
    pairs: list[tuple[str, str]] = []
    for row in rows:
        for metric in goal(row["goal"]).success:
            if isinstance(row.get(metric), (int, float)) and (row["attack"], metric) not in pairs:
                pairs.append((row["attack"], metric))
    return pairs


def _strengths(rows: list[dict[str, Any]], param: str) -> list[tuple[Any, list[dict[str, Any]]]]:
    return sorted(groups(rows, lambda r: strength(r, param)).items(), key=lambda kv: (kv[0] is not None, kv[0] if kv[0] is not None else 0))


def by_strength(rows: list[dict[str, Any]], param: str) -> dict[Any, dict[str, Interval | None]]:
    """One record per strength (undefended first): intervals over seeds of target accuracy, epsilon where
    reported, each attack's success and its trivial answer. Accuracy counts each seed once (the mean of its
    runs: report.aggregate.target_accuracy), so every attack of a strength is beside the same accuracy."""
    out: dict[Any, dict[str, Interval | None]] = {}
    for value, mine in _strengths(rows, param):
        per_seed = list(groups(mine, lambda r: r["seed"]).values())
        entry = {"target_acc": target_accuracy(mine)[0], "epsilon": metric_interval([s[0] for s in per_seed], "epsilon")}
        for attack, metric in series(rows):
            runs = [r for r in mine if r["attack"] == attack]
            entry[f"{attack} {metric}"] = metric_interval(runs, metric)
            entry[f"{attack} {metric} trivial"] = metric_interval(runs, metric, lambda r, m=metric: trivial(r, m))
        out[value] = entry
    return out


def judgement(runs: list[dict[str, Any]]) -> str:
    """'leaks: inverse-net ssim, psnr' or 'at the trivial answer' for the runs of one strength (report.audit.RULE)."""
    leaking = []
    for attack, mine in groups(runs, lambda r: r["attack"]).items():
        beaten = metrics_beaten(mine)
        if beaten:
            leaking.append(f"{attack} {', '.join(beaten)}")
    return f"leaks: {'; '.join(leaking)}" if leaking else "at the trivial answer"


def notes(rows: list[dict[str, Any]]) -> list[str]:
    """The sentences under a trade-off or sweep table: the protection answer, each attack's budget, and the
    accuracy redraw of noise defenses when it is visible."""
    lines = []
    answer = protection(defense_outcomes(rows)) if any(not r.get("defense") for r in rows) else None
    if answer:
        lines.append(f"**Judgement.** {answer}")
    for attack, runs in groups(rows, lambda r: r["attack"]).items():
        plain = [r for r in runs if not r.get("defense")] or runs
        text = budget_text(plain)
        if text:
            lines.append(f"- {attack}:{text.removeprefix(' Attack budget:')}".rstrip("."))
    spread = max((target_accuracy(mine)[1] for _, mine in groups(rows, lambda r: (r.get("defense"), str(r.get("defense_params")))).items()), default=0.0)
    if spread > 0:
        lines.append(
            f"- Target accuracy of a randomised defense is measured with fresh noise in every run, so runs of one seed differ "
            f"(here by up to {fmt(100 * spread)} points); each seed counts once, with the mean of its runs."
        )
    return lines


def markdown(rows: list[dict[str, Any]], defense: str, param: str, scenario: str) -> str:
    """tradeoff.md: the table with a judgement per strength, the answer to "which strength protects, at what
    cost", the attacks' budgets, and the thread count and seeds it rests on."""
    records = by_strength(rows, param)
    columns = ["target_acc"] + (["epsilon"] if any(e["epsilon"] is not None for e in records.values()) else [])
    for attack, metric in series(rows):
        columns += [f"{attack} {metric}", f"{attack} {metric} trivial"]
    seeds = sorted({r["seed"] for r in rows})
    threads = sorted({r.get("threads") for r in rows}, key=str)
    verdicts = {value: judgement(mine) for value, mine in _strengths(rows, param)}
    lines = [
        f"# Trade-off: {defense} by {param}",
        "",
        f"{scenario}; seeds {seeds} ({len(seeds)} per row), torch threads {threads}. Cells: mean [95% t interval over seeds]; "
        f"'trivial' is the same metric for the attacker's mean image (reconstruction, class) or the most common value (attributes). "
        "Two rows differ only where their intervals do not overlap.",
        "",
        RULE,
        "",
    ]
    body = [["none" if k is None else k] + [e.get(c) for c in columns] + [verdicts[k]] for k, e in records.items()]
    return "\n".join(lines) + table([param, *columns, "judgement"], body) + "\n" + "\n".join(notes(rows)) + "\n"


def panels(rows: list[dict[str, Any]], label: Any = None) -> list[Panel]:
    """One privacy-utility panel per (attack, success metric) of the rows: a series per defense (strength
    labels from `label(row)`, default the defense parameters), the undefended model, the trivial answer."""
    out = []
    for attack, metric in series(rows):
        runs = [r for r in rows if r["attack"] == attack and isinstance(r.get(metric), (int, float))]
        plain = [r for r in runs if not r.get("defense")]
        reference = None
        if plain:
            accuracy = target_accuracy(plain)[0]
            reference = (accuracy.mean, metric_interval(plain, metric).mean) if accuracy else None
        base = metric_interval(plain or runs, metric, lambda r, m=metric: trivial(r, m))
        by_defense: dict[str, list] = {}
        for _, mine in groups([r for r in runs if r.get("defense")], lambda r: (r["defense"], str(sorted((r.get("defense_params") or {}).items())))).items():
            accuracy = target_accuracy(mine)[0]
            note = label(mine[0]) if label else ", ".join(f"{v}" for k, v in sorted((mine[0].get("defense_params") or {}).items()) if k != "train")
            if accuracy:
                by_defense.setdefault(mine[0]["defense"], []).append((accuracy.mean, metric_interval(mine, metric).mean, note))
        higher = METRICS.get(metric).higher_is_better if metric in METRICS.names() else True
        out.append(Panel(f"{attack}: {metric}", metric, {k: sorted(v) for k, v in by_defense.items()}, reference, base.mean if base else None, higher, MARGINS.get(metric)))
    return out


def plot(rows: list[dict[str, Any]], defense: str, param: str, values: list[Any], path: Path) -> None:
    """Each attack-success metric against target accuracy, one panel each: the strengths as labelled points,
    the undefended model as a star, the trivial answer as a dotted line, the Pareto front dashed."""
    tradeoff_figure(panels(rows, lambda r: f"{strength(r, param):g}" if isinstance(strength(r, param), (int, float)) else str(strength(r, param))),
                    f"{defense}: {param} in {values} (point labels: {param})", path)
