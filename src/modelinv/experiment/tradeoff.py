"""The privacy-utility trade-off: one defense swept over strengths, the configured attacks run against
each defended target, and target accuracy plotted against attack success, the undefended model as reference.

Attack success is PSNR and SSIM for reconstruction attacks, top-1 attack accuracy for class attacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from modelinv.experiment.config import TradeoffConfig
from modelinv.experiment.runner import check_names, dump_config, prepare, run_experiment, write_json
from modelinv.report.plots import tradeoff_figure

SUCCESS = {"reconstruct": ("psnr", "ssim"), "class": ("attack_acc_top1",)}


def run_tradeoff(cfg: TradeoffConfig, out: Path, on_row: Callable[[dict], None] | None = None) -> list[dict[str, Any]]:
    """Run every (strength, attack) pair; write tradeoff.json after each, then tradeoff.md and tradeoff.png."""
    plan = cfg.experiments()
    for _, experiments in plan:  # every attack, defense parameter and metric checked before any training
        for experiment in experiments:
            check_names(experiment)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(out / "config.yaml", cfg)
    rows: list[dict[str, Any]] = []
    for strength, experiments in plan:
        setting = prepare(experiments[0])
        for experiment in experiments:
            row, _ = run_experiment(experiment, setting)
            rows.append({"strength": strength, **row})
            write_json(out / "tradeoff.json", rows)
            if on_row:
                on_row(rows[-1])
    (out / "tradeoff.md").write_text(markdown(cfg, rows))
    plot(cfg, rows, out / "tradeoff.png")
    return rows


def series(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(attack, metric) pairs that measure attack success, in the order the attacks were configured."""
    pairs = []
    for row in rows:
        for metric in SUCCESS[row["goal"]]:
            if metric in row and (row["attack"], metric) not in pairs:
                pairs.append((row["attack"], metric))
    return pairs


def by_strength(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """One record per strength: target accuracy, epsilon where reported, and each attack's success."""
    table: dict[Any, dict[str, Any]] = {}
    for row in rows:
        entry = table.setdefault(row["strength"], {"target_acc": row["target_test_acc"], "epsilon": row.get("epsilon")})
        for metric in SUCCESS[row["goal"]]:
            entry[f"{row['attack']} {metric}"] = row.get(metric)
    return table


def markdown(cfg: TradeoffConfig, rows: list[dict[str, Any]]) -> str:
    s = cfg.sweep
    table = by_strength(rows)
    columns = ["target_acc"] + (["epsilon"] if any(e["epsilon"] is not None for e in table.values()) else [])
    columns += [f"{attack} {metric}" for attack, metric in series(rows)]
    lines = [
        f"# Trade-off: {s.defense} by {s.param}",
        "",
        f"{cfg.target.arch} on {cfg.data.source} ({cfg.data.split}), attacker access {rows[0]['access']} (undefended), "
        f"seed {cfg.seed}; fixed defense params {s.params or 'none'}.",
        "",
        "| " + " | ".join([s.param, *columns]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for strength, entry in table.items():
        cells = ["none" if strength is None else f"{strength:g}"] + [_fmt(entry.get(c)) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def plot(cfg: TradeoffConfig, rows: list[dict[str, Any]], path: Path) -> None:
    """Target accuracy against each attack-success metric, one panel each; the undefended model is a star."""
    table = by_strength(rows)
    panels = []
    for attack, metric in series(rows):
        key = f"{attack} {metric}"
        swept = [(e[key], e["target_acc"], f"{k:g}") for k, e in table.items() if k is not None]
        reference = (table[None][key], table[None]["target_acc"]) if None in table else None
        panels.append((f"{attack} {metric}", {cfg.sweep.defense: swept}, reference))
    tradeoff_figure(panels, f"{cfg.sweep.defense}: {cfg.sweep.param} in {cfg.sweep.values}", path)
