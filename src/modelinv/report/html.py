"""`report.html`: one self-contained page (inline CSS, images as data URIs, no script, no request) of a results
directory: the verdict (report.audit's rule, each attack's budget), the defenses on the privacy-utility front
and the cheapest that protects, a defense x metric table (or, with several attacks, the leaderboard), the
privacy-utility plots, every run's labelled reconstructions, the environment and the commands that reproduce
each run.

Runs on text targets (modelinv.text) show text instead of image grids: each attacked text beside what the attack
recovered (`attack_details.examples`), its sensitive words (names, diagnoses: the data's `sensitive` words, or the
attribute guessed) highlighted and the recovered words found in it marked; the undefended runs' texts in a section of
their own. Every text is escaped: texts are data, never markup.

Undefended rows come first everywhere; accuracy is shown once per target (report.aggregate.target_accuracy);
image grids (and only they) are scaled without smoothing."""

from __future__ import annotations

import base64
import io
import re
import shlex
from html import escape
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file

from modelinv.attacks.goals import GOALS
from modelinv.data.text import content_words, words
from modelinv.metrics.psnr import MAX_DB
from modelinv.metrics.ssim import ssim_per_image
from modelinv.report.aggregate import Interval, groups, metric_interval, target_accuracy
from modelinv.report.audit import RULE, defense_outcomes, finding, protection, setting, show
from modelinv.report.baselines import trivial
from modelinv.report.leaderboard import leaderboard
from modelinv.report.plots import tradeoff_figure
from modelinv.report.tradeoff import panels as tradeoff_panels
from modelinv.results import ResultsStore, defense_label

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}tr.trivial td{color:#555;font-style:italic}
.wide{overflow-x:auto}.verdict li{margin:.3rem 0}.rule{color:#444;font-size:.9rem}.answer{font-weight:600}
.run{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
img{max-width:100%}img.plot{display:block;margin:.5rem 0}img.pix{image-rendering:pixelated;display:block}
.grid{display:flex;flex-wrap:wrap;gap:6px}figure.target{margin:0;padding:3px;border:1px solid #eee;text-align:center}
figure.target figcaption{font-size:.72rem;line-height:1.2;color:#333}code{background:#f5f5f5;padding:0 .2rem}
table.texts td{vertical-align:top}table.texts td.text{min-width:16rem;max-width:34rem}.legend{font-size:.85rem;color:#444}
mark.sensitive{background:#ffd0d0;color:#600;border-radius:2px;padding:0 .1rem}.hit{box-shadow:inset 0 -.25em #7fd17f}
.word{display:inline-block;margin:0 .25rem .15rem 0;padding:0 .2rem;border:1px solid #ddd;border-radius:3px}
.word.miss{color:#777;font-style:italic}.secret{font-weight:600}
"""

PAGE = 32
"""Targets per page of a run's reconstruction grid: the first page is shown, the others fold out."""


def data_uri(png: bytes) -> str:
    """A PNG as a data: URI, so the page needs no other file."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def cell(value: Any) -> str:
    """A table cell: numbers right-aligned with 3 significant digits, intervals as 'mean [low, high]'
    (one seed: the mean alone)."""
    if isinstance(value, Interval):  # one seed: the number alone (the table says how many seeds)
        return f'<td class="num">{escape(value.text() if value.low is not None else show(value, ""))}</td>'
    if isinstance(value, float):
        return f'<td class="num">{escape(show(Interval(value, None, None, 1), ""))}</td>'
    return f"<td>{escape('n/a' if value is None else str(value))}</td>"


def html_table(columns: Iterable[str], rows: Iterable[Iterable[Any]], classes: Iterable[str] | None = None) -> str:
    """An HTML table; `classes` gives each body row a class (e.g. 'trivial')."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    rows = list(rows)
    classes = list(classes) if classes is not None else [""] * len(rows)
    body = "".join((f'<tr class="{k}">' if k else "<tr>") + "".join(cell(v) for v in row) + "</tr>" for row, k in zip(rows, classes))
    return f'<div class="wide"><table><tr>{head}</tr>{body}</table></div>'


def scope(row: dict[str, Any]) -> str:
    """The target a row attacked: model, cut layer and data (defenses and attacks vary within a scope)."""
    layer = f" at {row['layer']}" if row.get("layer") else ""
    return f"{row['model']}{layer} on {row['data']}"


def plain_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with the undefended ones first, otherwise in their order."""
    return sorted(rows, key=lambda r: bool(r.get("defense")))


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """The verdict of a sweep: per target, each attack on the undefended model judged by the rule of
    report.audit (numbers beside their trivial answers, seeds pooled, budget), then which defense protects."""
    lines = []
    scopes = list(dict.fromkeys(scope(r) for r in rows))
    for where in scopes:
        mine = [r for r in rows if scope(r) == where]
        prefix = f"{where}: " if len(scopes) > 1 else ""
        plain = [r for r in mine if not r.get("defense")]
        lines += [prefix + finding(runs) for runs in groups(plain, setting).values()]
        answer = protection(defense_outcomes(mine)) if plain else None
        if answer:
            lines.append(prefix + answer)
        elif not plain:
            lines.append(f"{prefix}no undefended run to judge the defenses against.")
    return lines


def defense_table(rows: list[dict[str, Any]]) -> str:
    """Defense x metric for one target: the trivial answer, the undefended model, then each defense cheapest
    first, with target accuracy, its cost, each attack's success metrics, the judgement and the Pareto front."""
    outcomes = defense_outcomes(rows)
    pairs = list(dict.fromkeys((r["attack"], m) for r in rows for m in GOALS[r["goal"]].success if isinstance(r.get(m), (int, float))))
    several = len({a for a, _ in pairs}) > 1
    names = [f"{a} {m}" if several else m for a, m in pairs]
    columns = ["defense", "target accuracy", "cost (points)", *names, "judgement", "Pareto front"]
    body, classes = [], []
    by_label = groups(rows, defense_label)
    trivials = [metric_interval([r for r in rows if r["attack"] == a], m, lambda r, m=m: trivial(r, m)) for a, m in pairs]
    if any(t is not None for t in trivials):
        body.append(["trivial answer", None, None, *trivials, "", ""])
        classes.append("trivial")
    spread = 0.0
    for o in outcomes:
        mine = by_label[o["defense"]]
        accuracy, wobble = target_accuracy(mine)
        spread = max(spread, wobble)
        values = [metric_interval([r for r in mine if r["attack"] == a], m) for a, m in pairs]
        verdict = "at the trivial answer" if o["protects"] else "leaks: " + "; ".join(f"{a + ' ' if several else ''}{', '.join(ms)}" for a, ms in o["leaking"].items())
        cost = None if o["name"] is None or o["accuracy_cost_points"] is None else float(o["accuracy_cost_points"])
        body.append([o["defense"], accuracy, cost, *values, verdict, "yes" if o["pareto"] else ""])
        classes.append("")
    seeds = sorted({r.get("seed") for r in rows}, key=str)
    note = f"<p>Seeds: {', '.join(map(str, seeds))} ({len(seeds)} per cell{'' if len(seeds) > 1 else ': no interval'}).</p>" + (
        f"<p>Accuracy of a randomised defense is measured with fresh noise in every run, so the runs of one seed differ "
        f"(here by up to {100 * spread:.2g} points); each seed counts once, with the mean of its runs.</p>"
        if spread > 0 else ""
    )
    return html_table(columns, body, classes) + note


def plots(rows: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """Per target with defenses, each attack's success against target accuracy: a series per defense (means
    over seeds, strengths as labels), the undefended model, the trivial answer and the Pareto front. None for text
    targets: their rows carry the undefended model's accuracy only (a plot would stack every defense on one line)."""
    figures = []
    for where in dict.fromkeys(scope(r) for r in rows):
        mine = [r for r in rows if scope(r) == where]
        if not any(r.get("defense") for r in mine) or is_text(mine[0]):  # text: no accuracy under defense to plot against
            continue
        png = tradeoff_figure(tradeoff_panels(mine), f"privacy-utility: {where}")
        if png is not None:
            figures.append((where, png))
    return figures


def _png(image: torch.Tensor, scale: int) -> str:
    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    array = array[0] if array.shape[0] == 1 else array[:3].permute(1, 2, 0)
    picture = Image.fromarray(np.ascontiguousarray(array.numpy()))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    height, width = array.shape[:2]
    return f'<img class="pix" alt="" width="{width * scale}" height="{height * scale}" src="{data_uri(buffer.getvalue())}">'


def per_image(images: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """Per-image PSNR (dB, peak 1, capped at metrics.psnr.MAX_DB) and SSIM of reconstructions against their
    originals, as the run's averages are computed; empty when the run has no originals (class inversion)."""
    x_hat, x = images.get("reconstructions"), images.get("originals")
    if x is None or x_hat is None or x.shape != x_hat.shape or x.dim() != 4:
        return {}
    mse = ((x_hat.double() - x.double()) ** 2).flatten(1).mean(1)
    psnr = (10 * torch.log10(1 / mse.clamp_min(1e-300))).clamp_max(MAX_DB)
    return {"psnr": psnr.tolist(), "ssim": ssim_per_image(x_hat.double(), x.double()).tolist()}


def labelled_grid(path: Path, run_id: str = "") -> str:
    """A run's reconstructions (under their originals when known), each captioned with its target index, its
    true class and, for reconstructions, its PSNR and SSIM, and the judge's class where the run stored it
    (tensor 'judge_labels'); PAGE targets a page, later pages folded.
    '' when the run stored no image tensors (tables, texts)."""
    try:
        images = load_file(str(path))
    except (OSError, SafetensorError):
        return ""
    recon, labels, originals = images.get("reconstructions"), images.get("labels"), images.get("originals")
    if recon is None or recon.dim() != 4 or recon.shape[1] not in (1, 3):
        return ""
    scores = per_image(images)
    judged = images.get("judge_labels")  # the evaluator's top-1 class per reconstruction, where the runner stores it
    scale = max(1, min(3, 84 // max(recon.shape[-1], 1)))
    figures = []
    for i in range(len(recon)):
        caption = [f"#{i}"] + ([f"class {int(labels[i])}"] if labels is not None and i < len(labels) else [])
        lines = " · ".join(caption)
        if scores:
            lines += f"<br>{scores['psnr'][i]:.1f} dB · SSIM {scores['ssim'][i]:.2f}"
        if judged is not None and i < len(judged):
            lines += f"<br>judge: {int(judged[i])}" + (" ✓" if labels is not None and i < len(labels) and int(judged[i]) == int(labels[i]) else " ✗")
        top = _png(originals[i], scale) if originals is not None and originals.shape == recon.shape else ""
        figures.append(f'<figure class="target">{top}{_png(recon[i], scale)}<figcaption>{lines}</figcaption></figure>')
    what = "Originals (top) and reconstructions (bottom)" if originals is not None else "Inversions"
    text = f"<p>{what}, labelled with the target index and true class" + (", per-image PSNR and SSIM" if scores else "") + ":</p>"
    pages = [figures[i : i + PAGE] for i in range(0, len(figures), PAGE)]
    out = text + f'<div class="grid" id="grid-{escape(run_id)}-1">{"".join(pages[0])}</div>'
    for n, page in enumerate(pages[1:], start=2):
        first, last = (n - 1) * PAGE, (n - 1) * PAGE + len(page) - 1
        out += f'<details><summary>targets #{first}-#{last} (page {n} of {len(pages)})</summary><div class="grid" id="grid-{escape(run_id)}-{n}">{"".join(page)}</div></details>'
    return out


def is_text(row: dict[str, Any]) -> bool:
    """Whether a row is a run on a text target (its goal is one of the text goals of attacks.goals)."""
    return row.get("goal") in GOALS and GOALS[row["goal"]].text


TOKEN = re.compile(r"[a-z0-9]+", re.IGNORECASE)
"""A word of a text as modelinv.data.text.words finds it (runs of letters and digits, compared lower-cased)."""

EXAMPLES_SHOWN = 10
"""Examples shown per run (a row stores modelinv.experiment.text.EXAMPLES)."""


def highlight(text: str, sensitive: set[str] = frozenset(), recovered: set[str] = frozenset()) -> str:
    """`text` as escaped HTML with its words (lower-cased) in `sensitive` in <mark class="sensitive"> and those in
    `recovered` underlined (class "hit"); everything else escaped as it is.

    Example: highlight("Ann <b>has</b> asthma", {"ann", "asthma"}, {"asthma"})
    -> '<mark class="sensitive">Ann</mark> &lt;b&gt;has&lt;/b&gt; <mark class="sensitive hit">asthma</mark>'"""
    out, last = [], 0
    for match in TOKEN.finditer(text):
        out.append(escape(text[last : match.start()]))
        word, shown = match.group().lower(), escape(match.group())
        classes = " ".join(c for c, on in (("sensitive", word in sensitive), ("hit", word in recovered)) if on)
        tag = "mark" if word in sensitive else "span"
        out.append(f'<{tag} class="{classes}">{shown}</{tag}>' if classes else shown)
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def _text_table(columns: list[str], rows: list[list[str]]) -> str:
    """A table of already-escaped HTML cells (the first two columns: index and a text)."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="text">{v}</td>' if j == 1 else f"<td>{v}</td>" for j, v in enumerate(row)) + "</tr>" for row in rows)
    return f'<div class="wide"><table class="texts"><tr>{head}</tr>{body}</table></div>'


def _bag_of_words(examples: list[dict[str, Any]]) -> str:
    rows, any_sensitive = [], False
    for i, e in enumerate(examples):
        original = str(e.get("original", ""))
        recovered = [str(w) for w in e.get("recovered") or []]
        sensitive = {str(w).lower() for w in e.get("sensitive") or []}
        any_sensitive |= bool(sensitive)
        truth, found = content_words(original), set(recovered)
        chips = " ".join(
            f'<span class="word{" hit" if w in truth else " miss"}" title="{"in the original" if w in truth else "not in the original"}">'
            + (f'<mark class="sensitive">{escape(w)}</mark>' if w in sensitive else escape(w)) + "</span>"
            for w in recovered
        ) or "<i>(nothing)</i>"
        hits = len(truth & found)
        score = f"{hits} of {len(truth)} content words" + (f", precision {hits}/{len(found)}" if found else "")
        if sensitive:
            score += f"; sensitive {len(sensitive & found)} of {len(sensitive)}"
        rows.append([str(i), highlight(original, sensitive, found & truth), chips, escape(score)])
    legend = (
        '<p class="legend">Each attacked text beside the words the attack recovered from its embedding. In the text: '
        '<mark class="sensitive">sensitive words</mark> (names, diagnoses) and <span class="hit">words the attack recovered</span>. '
        'Recovered words: <span class="word hit">in the text</span> <span class="word miss">not in the text</span>. '
        "Scored on content words (no stop words), as bow_f1 is."
        + ("" if any_sensitive else " This data names no sensitive words (only generated records do).")
        + "</p>"
    )
    return legend + _text_table(["#", "original text", "recovered words", "of the text's words"], rows)


def _attribute(examples: list[dict[str, Any]]) -> str:
    rows = []
    for i, e in enumerate(examples):
        original, true, guessed = str(e.get("original", "")), str(e.get("true", "")), str(e.get("guessed", ""))
        secret = set(words(true))
        right = guessed == true
        verdict = f'<span class="word {"hit" if right else "miss"}">{escape(guessed)}</span> ' + ("✓" if right else "✗")
        rows.append([str(i), highlight(original, secret, secret if right else set()), f'<mark class="sensitive">{escape(true)}</mark>', verdict])
    legend = (
        '<p class="legend">Each attacked text, its <mark class="sensitive">sensitive value</mark> (highlighted where the text holds it, '
        '<span class="hit">underlined</span> when the attack guessed it), and the attack\'s guess.</p>'
    )
    return legend + _text_table(["#", "original text", "sensitive value", "guessed"], rows)


def _canaries(examples: list[dict[str, Any]]) -> str:
    extracted = any("extracted" in e for e in examples)
    rows = []
    for i, e in enumerate(examples):
        canary, secret = str(e.get("canary", "")), str(e.get("secret") or "")
        shown = escape(canary[: -len(secret)]) + f'<mark class="sensitive secret">{escape(secret)}</mark>' if secret and canary.endswith(secret) else escape(canary)
        cells = [str(i), shown, escape(str(e.get("repetitions", "n/a")))]
        if extracted:
            guess, right = str(e.get("extracted") or ""), bool(secret) and str(e.get("extracted") or "") == secret
            cells.append(f'<span class="word {"hit" if right else "miss"}">{escape(guess) or "<i>(nothing)</i>"}</span> ' + ("✓" if right else "✗"))
        else:
            cells.append(escape(fmt_bits(e.get("exposure"))))
        rows.append(cells)
    if extracted:
        legend = (
            '<p class="legend">The canaries (Carlini et al. 2019), their <mark class="sensitive">secret</mark>, how often each was inserted '
            "in the training text (0: never, the reference) and what decoding the model from the canary's prefix extracted (✓: the exact secret).</p>"
        )
        return legend + _text_table(["#", "canary", "times inserted", "extracted"], rows)
    legend = (
        '<p class="legend">The canaries (Carlini et al. 2019), their <mark class="sensitive">secret</mark>, how often each was inserted '
        "in the training text (0: never, the reference) and its exposure: log2 of the number of candidate secrets divided by "
        "the secret's rank by the model's perplexity (the maximum means the model ranks the secret first).</p>"
    )
    return legend + _text_table(["#", "canary", "times inserted", "exposure (bits)"], rows)


def fmt_bits(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"


def text_examples(row: dict[str, Any]) -> str:
    """A text run's examples (attack_details.examples) as a readable, escaped table: original beside recovered
    (bag of words), the sensitive value beside the guess (attributes, names), the canaries with their exposure
    (memorisation) or what was extracted (extraction); '' when the row stores none."""
    examples = [e for e in (row.get("attack_details") or {}).get("examples") or [] if isinstance(e, dict)][:EXAMPLES_SHOWN]
    if not examples:
        return ""
    keys = set(examples[0])
    if {"original", "recovered"} <= keys:
        return _bag_of_words(examples)
    if {"original", "true", "guessed"} <= keys:
        return _attribute(examples)
    if "canary" in keys:
        return _canaries(examples)
    columns = list(examples[0])
    return html_table(columns, [[str(e.get(k)) for k in columns] for e in examples])


def recovered_text(rows: list[dict[str, Any]]) -> str:
    """The section of the undefended text runs' examples: what an attacker recovers from the model as deployed."""
    blocks = []
    for row in rows:
        if is_text(row) and not row.get("defense"):
            shown = text_examples(row)
            if shown:
                blocks.append(f"<h3>{escape(row['attack'])} | seed {row['seed']} | {escape(scope(row))}</h3>" + shown)
    if not blocks:
        return ""
    return "<h2>Recovered text</h2><p>What the attacks recover from the undefended text model; every run's own texts, defended runs included, are under Runs.</p>" + "".join(blocks)


def run_section(row: dict[str, Any]) -> str:
    """One run: what was attacked how, its success metrics beside the trivial answer, its labelled
    reconstructions, and the command that reruns it."""
    metrics = [m for m in GOALS[row["goal"]].success if m in row]
    if is_text(row):  # a text goal's other metrics too (precision, recall, top-5, ...), each beside its trivial answer
        metrics += [m for m in GOALS[row["goal"]].default_metrics if m in row and m not in metrics]
    extra = [m for m in ("target_test_acc", "queries", "gradients", "seconds") if m in row]
    table = html_table(
        ["", *metrics, *extra],
        [["attack", *[row[m] for m in metrics], *[row[m] for m in extra]], ["trivial answer", *[trivial(row, m) for m in metrics], *[None] * len(extra)]],
        ["", "trivial"],
    )
    directory = Path(row["artifacts"] or "")
    # absolute paths (the config's own paths are absolute too): the command works from any directory, `/` included,
    # and reruns into a fresh directory beside the original output, so nothing is skipped as already finished
    rerun = (f"modelinv run {shlex.quote(str(directory.resolve() / 'config.yaml'))} "
             f"--out {shlex.quote(str(directory.resolve().parent.parent / ('rerun-' + row['run_id'])))}") if row["artifacts"] else ""
    if is_text(row):  # texts, not images: no grid, no empty panel
        shown = text_examples(row)
        texts = f"<details><summary>attacked texts and what was recovered</summary>{shown}</details>" if shown else ""
        return (
            f'<div class="run"><h3>{escape(row["attack"])} | {escape(defense_label(row))} | seed {row["seed"]} | {escape(scope(row))}</h3>'
            f"<p>access: {escape(str(row.get('access')))}; run <code>{escape(row['run_id'])}</code></p>"
            + table + texts + (f"<p>Reproduce: <code>{escape(rerun)}</code></p>" if rerun else "") + "</div>"
        )
    grid = labelled_grid(directory / "reconstructions.safetensors", row["run_id"]) if row["artifacts"] else ""
    if not grid and (directory / "reconstructions.png").is_file() and row["artifacts"]:
        grid = f'<img class="pix" alt="reconstructions of run {escape(row["run_id"])}" src="{data_uri((directory / "reconstructions.png").read_bytes())}">'
    examples = (row.get("attack_details") or {}).get("examples") or []
    if not grid and examples and isinstance(examples[0], dict):
        keys = list(examples[0])
        grid = "<p>Examples:</p>" + html_table(keys, [[str(e.get(k)) for k in keys] for e in examples[:10]])
    return (
        f'<div class="run"><h3>{escape(row["attack"])} | {escape(defense_label(row))} | seed {row["seed"]} | {escape(scope(row))}</h3>'
        f"<p>access: {escape(str(row.get('access')))}; run <code>{escape(row['run_id'])}</code></p>"
        + table
        + (grid or "<p>(no image)</p>")
        + (f"<p>Reproduce: <code>{escape(rerun)}</code></p>" if rerun else "")
        + "</div>"
    )


def environment(rows: list[dict[str, Any]], sweeps: list[dict[str, Any]]) -> str:
    """Package versions, every seed's data-split hashes, and the commands that produced the results."""
    versions = rows[0].get("versions", {})
    hashes = sorted({(r["data"], r["seed"], split, digest) for r in rows for split, digest in (r.get("data_hashes") or {}).items()}, key=lambda h: (h[0], h[1], h[2]))
    commands = "".join(f"<li><code>{escape(s['command'])}</code></li>" for s in sweeps if s["command"])
    return (
        html_table(["package", "version"], sorted(versions.items()))
        + html_table(["data", "seed", "split", "SHA-256"], [[d, str(s), split, digest] for d, s, split, digest in hashes])
        + (f"<p>Commands that produced these results:</p><ul>{commands}</ul>" if commands else "")
    )


def write_report(
    directory: Path,
    title: str = "modelinv report",
    verdict: list[str] | None = None,
    accuracy_floor: float | None = None,
) -> Path:
    """Write `directory/report.html` from its results store; `verdict` replaces the computed summary (audits),
    followed by the answer on defenses (report.audit.protection) of each target unless it already has it.

    `accuracy_floor` (an audit's, as a fraction) is quoted when no defense protects. The defenses section is computed from the stored rows (report.audit.defense_outcomes): the Pareto front and
    the cheapest protecting defense."""
    store = ResultsStore(directory, create=False)
    try:
        rows, sweeps = plain_first(store.rows()), store.sweeps()
    finally:
        store.close()
    parts = [f"<h1>{escape(title)}</h1><p>{len(rows)} runs from <code>{escape(str(Path(directory).resolve()))}</code>.</p>"]
    scopes = groups(rows, scope)
    answers = {where: protection(defense_outcomes(mine), accuracy_floor) if any(not r.get("defense") for r in mine) else None for where, mine in scopes.items()}
    findings = summary(rows) if verdict is None else verdict + [
        (f"{where}: " if len(scopes) > 1 else "") + answer for where, answer in answers.items() if answer and answer not in " ".join(verdict)
    ]
    parts.append(f'<h2>Verdict</h2><p class="rule">{escape(RULE)}</p><ul class=verdict>' + "".join(f"<li>{escape(line)}</li>" for line in findings) + "</ul>")
    tables = []
    for where, mine in scopes.items():
        head = f"<h3>{escape(where)}</h3>" if len(scopes) > 1 else ""
        answer = answers[where]
        tables.append(head + (f'<p class="answer">{escape(answer)}</p>' if answer else "") + defense_table(mine))
    if tables:
        defended = any(r.get("defense") for r in rows)
        heading = "Defenses: privacy-utility front and the cheapest protection" if defended else "Results"
        intro = (
            "<p>Per defense (undefended first, then cheapest first): target accuracy and its cost in points, each attack's success "
            "(mean [95% interval] over seeds), whether any attack still beats the trivial answer, and whether the defense is on the "
            "Pareto front (no other setting has both higher accuracy and less leakage).</p>"
            if defended else "<p>Each attack's success beside the trivial answer (mean [95% interval] over seeds).</p>"
        )
        parts.append(f"<h2>{heading}</h2>" + intro + "".join(tables))
    several = [r for r in rows if len({x["attack"] for x in scopes[scope(r)]}) > 1]
    entries = leaderboard(several) if several else []
    if entries:
        parts.append(
            "<h2>Leaderboard</h2><p>Attacks ranked per model, defense and metric: mean and 95% t interval over seeds; "
            "attacks whose intervals overlap a better one's share its rank.</p>"
            + html_table(
                ["model and defense", "metric", "rank", "attack", "mean [95% interval]", "seeds", "target accuracy"],
                [[e.scope, e.metric, e.rank, e.attack, Interval(e.mean, e.low, e.high, e.seeds), e.seeds, e.target_test_acc] for e in entries],
            )
        )
    figures = plots(rows)
    if figures:
        parts.append("<h2>Privacy-utility</h2>" + "".join(f'<img class="plot" alt="privacy-utility plot, {escape(w)}" src="{data_uri(png)}">' for w, png in figures))
    parts.append(recovered_text(rows))
    parts.append("<h2>Runs</h2>" + "".join(run_section(r) for r in rows))
    if rows:
        parts.append("<h2>Environment and reproduction</h2>" + environment(rows, sweeps))
    page = f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title><style>{STYLE}</style></head><body>{"".join(parts)}</body></html>'
    path = Path(directory) / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
