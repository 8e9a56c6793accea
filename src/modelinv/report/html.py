"""`report.html`: one self-contained page (inline CSS, images as data URIs, no script, no request) of a results
directory: verdict, leaderboard, privacy-utility plots, every run's reconstructions, environment and the
commands that reproduce each run."""

from __future__ import annotations

import base64
import statistics
from html import escape
from pathlib import Path
from typing import Any, Iterable

from modelinv.attacks.goals import GOALS
from modelinv.report.aggregate import Interval, fmt
from modelinv.report.audit import margins_beaten
from modelinv.report.leaderboard import leaderboard
from modelinv.report.plots import tradeoff_figure
from modelinv.report.tradeoff import trivial
from modelinv.results import ResultsStore, defense_label

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict li{margin:.3rem 0}.run{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
img{max-width:100%;image-rendering:pixelated}code{background:#f5f5f5;padding:0 .2rem}
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{fmt(value)}</td>'
    return f"<td>{escape('n/a' if value is None else str(value))}</td>"


def html_table(columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def scope(row: dict[str, Any]) -> str:
    return f"{row['model']} on {row['data']}"


def mean_of(rows: list[dict[str, Any]], metric: str) -> float:
    values = [r[metric] for r in rows if isinstance(r.get(metric), (int, float))]
    return statistics.mean(values) if values else float("nan")


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Measured findings per model: each attack on the undefended model, then what each defense changed."""
    lines = []
    for where in dict.fromkeys(scope(r) for r in rows):
        mine = [r for r in rows if scope(r) == where]
        plain = [r for r in mine if not r.get("defense")]
        for attack in dict.fromkeys(r["attack"] for r in plain):
            runs = [r for r in plain if r["attack"] == attack]
            numbers = ", ".join(
                f"{m} {fmt(mean_of(runs, m))} (trivial answer {fmt(mean_of([{m: trivial(r, m)} for r in runs], m))})"
                for m in GOALS[runs[0]["goal"]].success
                if m in runs[0]
            )
            leaks = sum(bool(margins_beaten(r)) for r in runs)
            judgement = f"leaks in {leaks} of {len(runs)} seeds" if leaks else "no leakage beyond the trivial answer"
            lines.append(f"{where}, no defense: {attack} reaches {numbers}: {judgement} (target accuracy {mean_of(runs, 'target_test_acc'):.2%}).")
        for label in dict.fromkeys(defense_label(r) for r in mine if r.get("defense")):
            defended = [r for r in mine if defense_label(r) == label]
            changes = []
            for attack in dict.fromkeys(r["attack"] for r in defended):
                before = [r for r in plain if r["attack"] == attack]
                after = [r for r in defended if r["attack"] == attack]
                metric = GOALS[after[0]["goal"]].headline
                if before and metric in before[0]:
                    changes.append(f"{attack} {metric} {mean_of(before, metric):.3g} -> {mean_of(after, metric):.3g}")
            accuracy = f"target accuracy {mean_of(defended, 'target_test_acc'):.2%}"
            lines.append(f"{where}, {label}: {'; '.join(changes) or 'no undefended reference'} ({accuracy}).")
    return lines


def plots(rows: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """Per model, target accuracy against each attack's success: one series per defense, means over seeds."""
    figures = []
    for where in dict.fromkeys(scope(r) for r in rows):
        mine = [r for r in rows if scope(r) == where]
        panels = []
        for attack in dict.fromkeys(r["attack"] for r in mine):
            runs = [r for r in mine if r["attack"] == attack]
            for metric in (m for m in GOALS[runs[0]["goal"]].success if m in runs[0]):
                plain = [r for r in runs if not r.get("defense")]
                reference = (mean_of(plain, metric), mean_of(plain, "target_test_acc")) if plain else None
                series: dict[str, list] = {}
                for label in dict.fromkeys(defense_label(r) for r in runs if r.get("defense")):
                    at = [r for r in runs if defense_label(r) == label]
                    strength = label[label.find("(") + 1 : -1] if "(" in label else ""
                    series.setdefault(at[0]["defense"], []).append((mean_of(at, metric), mean_of(at, "target_test_acc"), strength))
                if series or reference:
                    panels.append((f"{attack} {metric}", series, reference))
        if panels:
            figures.append((where, tradeoff_figure(panels, f"privacy-utility: {where}")))
    return figures


def run_section(row: dict[str, Any]) -> str:
    """One run: what was attacked how, its success metrics, its image grid, and the command that reruns it."""
    metrics = [m for m in (*GOALS[row["goal"]].success, "target_test_acc", "queries", "seconds") if m in row]
    grid = Path(row["artifacts"] or "") / "reconstructions.png"
    image = f'<img alt="reconstructions of run {escape(row["run_id"])}" src="{data_uri(grid.read_bytes())}">' if grid.is_file() else "<p>(no image)</p>"
    rerun = f"modelinv run {Path(row['artifacts']) / 'config.yaml'} --out rerun-{row['run_id']}" if row["artifacts"] else ""
    return (
        f'<div class="run"><h3>{escape(row["attack"])} | {escape(defense_label(row))} | seed {row["seed"]} | {escape(scope(row))}</h3>'
        f"<p>access: {escape(str(row.get('access')))}; run <code>{escape(row['run_id'])}</code></p>"
        + html_table(metrics, [[row[m] for m in metrics]])
        + image
        + (f"<p>Reproduce: <code>{escape(rerun)}</code></p>" if rerun else "")
        + "</div>"
    )


def environment(rows: list[dict[str, Any]], sweeps: list[dict[str, Any]]) -> str:
    versions = rows[0].get("versions", {})
    hashes = {f"{r['data']} {split}": digest for r in rows for split, digest in (r.get("data_hashes") or {}).items()}
    commands = "".join(f"<li><code>{escape(s['command'])}</code></li>" for s in sweeps if s["command"])
    return (
        html_table(["package", "version"], sorted(versions.items()))
        + html_table(["data split", "SHA-256"], sorted(hashes.items()))
        + (f"<p>Commands that produced these results:</p><ul>{commands}</ul>" if commands else "")
    )


def write_report(
    directory: Path,
    title: str = "modelinv report",
    verdict: list[str] | None = None,
    defense_ranking: list[dict[str, Any]] | None = None,
) -> Path:
    """Write `directory/report.html` from its results store; `verdict` replaces the computed summary (audits)."""
    store = ResultsStore(directory, create=False)
    try:
        rows, sweeps = store.rows(), store.sweeps()
    finally:
        store.close()
    parts = [f"<h1>{escape(title)}</h1><p>{len(rows)} runs from <code>{escape(str(Path(directory).resolve()))}</code>.</p>"]
    findings = verdict if verdict is not None else summary(rows)
    parts.append("<h2>Verdict</h2><ul class=verdict>" + "".join(f"<li>{escape(line)}</li>" for line in findings) + "</ul>")
    if defense_ranking:
        columns = ["defense", "strongest_attack", "metric", "undefended", "defended", "privacy_gain", "accuracy", "accuracy_cost_points", "gain_per_point"]
        parts.append("<h2>Defenses ranked by privacy gained per accuracy point</h2>" + html_table(columns, [[d[c] for c in columns] for d in defense_ranking]))
    entries = leaderboard(rows)
    if entries:
        parts.append(
            "<h2>Leaderboard</h2><p>Attacks ranked per model, defense and metric: mean and 95% t interval over seeds; "
            "attacks whose intervals overlap a better one's share its rank.</p>"
            + html_table(
                ["model and defense", "metric", "rank", "attack", "mean [95% interval]", "seeds", "target accuracy"],
                [[e.scope, e.metric, e.rank, e.attack, Interval(e.mean, e.low, e.high, e.seeds).text(), e.seeds, e.target_test_acc] for e in entries],
            )
        )
    figures = plots(rows)
    if figures:
        parts.append("<h2>Privacy-utility</h2>" + "".join(f'<img alt="privacy-utility plot, {escape(w)}" src="{data_uri(png)}">' for w, png in figures))
    parts.append("<h2>Runs</h2>" + "".join(run_section(r) for r in rows))
    if rows:
        parts.append("<h2>Environment and reproduction</h2>" + environment(rows, sweeps))
    page = f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title><style>{STYLE}</style></head><body>{"".join(parts)}</body></html>'
    path = Path(directory) / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
