"""Class-representative inversion: a protocol that ranks attacks, on offline glyphs, plus the mnist5k protocol.

    python benchmarks/class_inversion.py                       # glyphs and the glyphs-explain protocols (seeds 0-4), glyphs-budget (0-2)
    python benchmarks/class_inversion.py --quick               # one seed, 2 inversions per class: checks that it runs
    python benchmarks/class_inversion.py --protocol mnist5k    # the second protocol (its explain protocols: mnist5k-explain*)
    python benchmarks/class_inversion.py --attacks mi-face gmi # some rows (the others are kept in the store)
    python benchmarks/class_inversion.py --render              # rewrite the Markdown from the stored runs
    (whatever ran, the Markdown has a section per protocol, `SHOWN`: rendered from its store, or said not run yet)

glyphs protocol: the `glyphs` source (characters rendered from matplotlib's fonts), `class-disjoint` split with
the 26 upper-case letters private (the LeNet target and, on a disjoint part of the private pool it never saw,
the `eval-cnn` judge) and the digits and lower-case letters public (the attacker's data, for GANs). Every
attack inverts each private class `per_class` times (20; chance top-1 1/26); GMI, PLG-MI and BREP-MI run at a CPU
budget (`CPU_BUDGET`: GMI 1 restart of 500 latent steps instead of 5 of 1,500, PLG-MI 200 steps instead of 600,
BREP-MI searches capped at 100 steps instead of 300). glyphs-budget protocol: the same data at 2 inversions per
class, each of these at the CPU and at the larger budget, and MI-Face at modelinv's and at the published budget, on
the same seeds: what the budget changes, measured. mnist5k protocol: digits 0-4 private, 5-9 public,
and a judge that tells all 10 digits apart (the public ones learnt from half the public pool, which the attacker
then lacks; chance top-1 0.1): an inversion that looks like a public digit counts as wrong.

Each table: mean [95% t interval over seeds] of knn_ratio (the ranking metric: the judge-feature distance of
an inversion to the nearest private image of its class, relative to that of real held-out images), fid_eval,
judge top-1 (and top-5 where k < classes), gradients, queries, seconds of the search and of the GAN's training; calibration rows (blank image, mean
public image, random latents of the same GAN, private class-mean image, real held-out private images at the
same n) come from the same runs' `baselines`. The literature's orderings are then stated as confirmed,
reversed or not distinguishable by the knn_ratio intervals. glyphs-explain protocols (`glyphs-explain`: GMI
against Mirror; `glyphs-explain-kedmi`: KEDMI against GMI and RLB-MI; `glyphs-explain-lomma`: GMI with and without
LOMMA, and LOMMA's logit loss without its surrogates; on mnist5k's data, `mnist5k-explain`: GMI against Mirror,
`mnist5k-explain-lomma`: PLG-MI with and without LOMMA, and its logit loss alone): for a reversal, on the data of
the table that shows it, the two attacks again and rows that test where it comes from (`EXPLAIN`: the same
attacks with one component removed or changed; a reversal with no such protocol is marked unexplained), with
diversity_ratio, all in one store per protocol computed on one machine, so every row of a seed attacks the same target weights
(a target trained on another CPU has other bits) and searches the same GAN. The GAN-swap rows of glyphs-explain-kedmi
(`gan`: GMI's search on KEDMI's GAN, KEDMI's search on GMI's) follow their GAN where the prior makes the difference,
their search where the search does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from modelinv.data.glyphs import UPPER_CLASSES
from modelinv.experiment.config import ExperimentConfig
from modelinv.report import benchmark
from modelinv.report.aggregate import compare, groups, metric_interval, spread
from modelinv.report.markdown import table
from modelinv.validation import validate

# The attacks' published budgets are GPU budgets: GMI's 5 restarts x 1,500 latent steps for the 520 inversions of a
# glyphs seed take about an hour on one CPU thread (0.9 ms per latent step, `benchmarks/speed.py`); PLG-MI's 600
# steps with LOMMA's three surrogates, 2.7 hours; BREP-MI's 300-step searches, 45 minutes. The glyphs table runs
# these at a CPU budget (CPU_BUDGET); the `glyphs-budget` protocol measures what each reduction changes: the CPU and
# the larger budget on the same seeds, at 2 inversions per class. (RLB-MI's and Mirror's cost does not grow with the
# inversions per class: they run at modelinv's defaults.)
CPU_BUDGET = {"gmi": {"restarts": 1, "iterations": 500}, "plg-mi": {"iterations": 200}, "brep-mi": {"iterations": 100}}
# Rows: label -> (registered attack, parameter overrides). "mi-face-paper" is Fredrikson et al.'s Algorithm 1 as
# published (5000 steps of lr 0.1, window 100, no jitter or blur); "mi-face" uses modelinv's defaults.
ROWS = {
    "mi-face": ("mi-face", {}),
    "mi-face-paper": ("mi-face", {"iterations": 5000, "lr": 0.1, "window": 100, "jitter": 0, "blur_sigma": 0.0}),
    "gmi": ("gmi", CPU_BUDGET["gmi"]),
    "gmi (published budget)": ("gmi", {}),
    "kedmi": ("kedmi", {}),
    "plg-mi": ("plg-mi", CPU_BUDGET["plg-mi"]),
    "plg-mi (published budget)": ("plg-mi", {}),
    "gmi+lomma": ("gmi", {**CPU_BUDGET["gmi"], "lomma": True}),
    "kedmi+lomma": ("kedmi", {"lomma": True}),
    "plg-mi+lomma": ("plg-mi", {**CPU_BUDGET["plg-mi"], "lomma": True}),
    "mirror-bb": ("mirror-bb", {}),
    "rlb-mi": ("rlb-mi", {}),
    "brep-mi": ("brep-mi", CPU_BUDGET["brep-mi"]),
    "brep-mi (modelinv default)": ("brep-mi", {}),
    # what Mirror's lead over GMI comes from (EXPLAIN): its initial selection alone (one generation), its genetic
    # search alone (a pool of `population` random latents: nothing is selected), and GMI with fewer gradient steps
    "mirror-bb (selection, 1 generation)": ("mirror-bb", {"generations": 1}),
    "mirror-bb (no selection)": ("mirror-bb", {"pool": 100}),
    "gmi (100 steps)": ("gmi", {**CPU_BUDGET["gmi"], "iterations": 100}),
    # what KEDMI's deficit against GMI and RLB-MI comes from: the same search, the mean G(mu_y) of each learned distribution
    # returned instead of a sample per image (KEDMI's sigma stays near 1.3, wider than the latent prior's 1)
    "kedmi (distribution means)": ("kedmi", {"output": "means"}),
    # ... and the GAN swapped between the two (`gan`): which of KEDMI's prior and its search makes the difference
    "gmi (KEDMI's GAN)": ("gmi", {**CPU_BUDGET["gmi"], "gan": "kedmi"}),
    "kedmi (GMI's GAN)": ("kedmi", {"gan": "wgan-gp"}),
    # what LOMMA changes in GMI: its logit loss alone (no distilled surrogates), against the full plug-in
    "gmi+lomma (logit loss only)": ("gmi", {**CPU_BUDGET["gmi"], "lomma": True, "lomma_surrogates": []}),
    # ... and in PLG-MI (mnist5k)
    "plg-mi+lomma (logit loss only)": ("plg-mi", {**CPU_BUDGET["plg-mi"], "lomma": True, "lomma_surrogates": []}),
}
# access per registered attack: what the black-box ones observe; the others are white-box
ACCESS = {"mirror-bb": {"observe": "probs"}, "rlb-mi": {"observe": "probs"}, "brep-mi": {"observe": "label"}}
WHITE_BOX = {"observe": None, "white_box": "full"}
GLYPHS = {"source": "glyphs", "split": "class-disjoint", "private_classes": UPPER_CLASSES}
# the judge tells all 10 digits apart (the public ones learnt from half the public pool, held out from the attacker)
MNIST5K = {"source": "mnist5k", "split": "class-disjoint", "judge_classes": "all"}
MAIN = [label for label in ROWS if "(" not in label]
# A reversal of a literature ordering in a protocol, (protocol, better, worse) -> the protocol that tests where it
# comes from, on the same data, and its rows (the two attacks run again beside them). Each such protocol has its own
# store, computed on one machine, and its rows are shown in their own table, not in the ranking. A reversal is
# explained only by a protocol on its own data: glyphs' explanation is not mnist5k's.
EXPLAIN = {
    ("glyphs", "gmi", "mirror-bb"): ("glyphs-explain", ["mirror-bb (selection, 1 generation)", "mirror-bb (no selection)", "gmi (100 steps)"]),
    ("glyphs", "kedmi", "gmi"): ("glyphs-explain-kedmi", ["kedmi (distribution means)", "gmi (KEDMI's GAN)", "kedmi (GMI's GAN)"]),
    ("glyphs", "kedmi", "rlb-mi"): ("glyphs-explain-kedmi", ["kedmi (distribution means)", "kedmi (GMI's GAN)"]),  # RLB-MI searches GMI's GAN
    ("glyphs", "gmi+lomma", "gmi"): ("glyphs-explain-lomma", ["gmi+lomma (logit loss only)"]),
    ("mnist5k", "gmi", "mirror-bb"): ("mnist5k-explain", ["mirror-bb (selection, 1 generation)", "mirror-bb (no selection)", "gmi (100 steps)"]),
    ("mnist5k", "plg-mi+lomma", "plg-mi"): ("mnist5k-explain-lomma", ["plg-mi+lomma (logit loss only)"]),
}
EXPLAIN_ROWS = list(dict.fromkeys(label for _, labels in EXPLAIN.values() for label in labels))


# Seeds: 5 per protocol (SEEDS), unless it says otherwise. mnist5k-explain-lomma has 10: at 5 its logit-loss row,
# 3.18 [2.14, 4.23], was not distinguishable from either end (PLG-MI 2.7 [2.23, 3.16], PLG-MI+LOMMA 4.84 [3.64, 6.04]).
SEEDS = 5
EXPLAIN_SEEDS = {"mnist5k-explain-lomma": 10}


def explained(protocol: str) -> dict[tuple[str, str], list[str]]:
    """The orderings an explain protocol tests: (better, worse) -> its rows."""
    return {(better, worse): labels for (_, better, worse), (where, labels) in EXPLAIN.items() if where == protocol}


def base_of(protocol: str) -> str:
    """The protocol whose reversals `protocol` tests (itself for a ranking protocol)."""
    return next((base for (base, _, _), (where, _) in EXPLAIN.items() if where == protocol), protocol)


def explain_protocol(protocol: str, base: dict) -> dict:
    """A protocol on `base`'s data that reruns the two attacks of each of its orderings and the rows that test the
    reversal, with diversity_ratio."""
    rows = [label for pair, labels in explained(protocol).items() for label in (*pair, *labels)]
    spec = {"data": base["data"], "per_class": base["per_class"], "rows": list(dict.fromkeys(rows)), "explain": True, "metrics": ["diversity_ratio"]}
    return {**spec, "seeds": EXPLAIN_SEEDS[protocol]} if protocol in EXPLAIN_SEEDS else spec

# protocol -> data, inversions per class, the rows it runs (in this order: every seed of a row before the next row,
# so an interrupted run leaves complete rows; GAN-sharing rows follow the row that trains their GAN), and budget pairs
RANKING = {
    "glyphs": {"data": GLYPHS, "per_class": 20, "rows": ["mi-face", "gmi", "mirror-bb", "brep-mi", "kedmi", "plg-mi", "mi-face-paper",
                                                      "kedmi+lomma", "gmi+lomma", "plg-mi+lomma", "rlb-mi"]},
    "mnist5k": {"data": MNIST5K, "per_class": 20, "rows": MAIN},
}
PROTOCOLS = {
    "glyphs": RANKING["glyphs"],
    "glyphs-budget": {"data": GLYPHS, "per_class": 2, "seeds": 3,
                      "rows": ["gmi", "gmi (published budget)", "mi-face", "mi-face-paper", "brep-mi", "brep-mi (modelinv default)", "plg-mi",
                               "plg-mi (published budget)"],
                      "pairs": [("gmi", "gmi (published budget)"), ("mi-face", "mi-face-paper"), ("brep-mi", "brep-mi (modelinv default)"),
                                ("plg-mi", "plg-mi (published budget)")]},
    "mnist5k": RANKING["mnist5k"],
    **{where: explain_protocol(where, RANKING[base]) for (base, _, _), (where, _) in EXPLAIN.items()},
}


def explain_protocols(base: str) -> list[str]:
    """The explain protocols of the ranking protocol `base`, in EXPLAIN's order."""
    return list(dict.fromkeys(where for (b, _, _), (where, _) in EXPLAIN.items() if b == base))


# the order of the Markdown's sections: every protocol, run or not, each ranking protocol's explain protocols after
# it (the default run leaves out mnist5k, the second protocol, and its explain protocols)
SHOWN = ["glyphs", "glyphs-budget", *explain_protocols("glyphs"), "mnist5k", *explain_protocols("mnist5k")]
METRICS = ["knn_ratio", "fid_eval", "attack_acc_top1", "attack_acc_top5", "knn_dist"]


def metrics_of(protocol: str) -> list[str]:
    """The metrics a protocol's runs compute: METRICS, plus its own (glyphs-explain: diversity_ratio, which tests
    whether an attack leads on knn_ratio by returning copies of its one best image)."""
    return METRICS + PROTOCOLS[protocol].get("metrics", [])


CALIBRATION = {
    "blank": "blank image",
    "mean-public": "mean public image",
    "random-latents": "random latents of the attack's GAN",
    "class-mean-private": "private class-mean image (no attacker has it)",
    "held-out-private": "real held-out private images (the 1.0 reference)",
}
# The literature's orderings, each (better, worse, source): checked on knn_ratio.
ORDERINGS = [
    ("plg-mi", "kedmi", "PLG-MI >= KEDMI (Yuan et al. 2023)"),
    ("kedmi", "gmi", "KEDMI >= GMI (Chen et al. 2021)"),
    ("gmi", "mi-face", "GMI > MI-Face (Zhang et al. 2020)"),
    ("gmi", "mirror-bb", "white-box GMI above black-box Mirror"),
    ("kedmi", "rlb-mi", "white-box KEDMI above black-box RLB-MI"),
    ("rlb-mi", "brep-mi", "label-only BREP-MI weakest (below scores-based RLB-MI)"),
    ("mirror-bb", "brep-mi", "label-only BREP-MI weakest (below scores-based Mirror)"),
    ("gmi+lomma", "gmi", "LOMMA improves GMI (Nguyen et al. 2023)"),
    ("kedmi+lomma", "kedmi", "LOMMA improves KEDMI"),
    ("plg-mi+lomma", "plg-mi", "LOMMA improves PLG-MI"),
]


def config(protocol: str, row: str, seed: int, per_class: int) -> ExperimentConfig:
    attack, params = ROWS[row]
    return validate(
        ExperimentConfig,
        {
            "seed": seed,
            "data": PROTOCOLS[protocol]["data"],
            "target": {"arch": "lenet"},
            "access": ACCESS.get(attack, WHITE_BOX),
            "attack": {"name": attack, "params": params},
            "per_class": per_class,
            "metrics": metrics_of(protocol),
        },
    )


def label_of(row: dict) -> str:
    """The benchmark row label of a stored run (its attack and parameters)."""
    params = row["config"]["attack"]["params"]
    for label, (attack, overrides) in ROWS.items():
        if attack == row["attack"] and overrides == params:
            return label
    return f"{row['attack']} {params}"


def gan_of(row: dict) -> str | None:
    """The cached GAN a run's attack searched (one per seed and GAN kind; rows that share it share its random latents)."""
    path = ((row.get("attack_details") or {}).get("gan") or {}).get("path")
    return Path(path).name if path else None  # the cache entry's name (kind and key), the same in any cache directory


def gan_families(per_gan: list[dict], rows: list[dict]) -> dict[str, list[dict]]:
    """The runs of `per_gan` (one per GAN) grouped by the row labels that share those GANs: 'gmi, mirror-bb' -> runs."""
    users: dict[str | None, list[str]] = {}
    for r in rows:
        sharing, label = users.setdefault(gan_of(r), []), label_of(r)
        if label not in sharing:
            sharing.append(label)
    families: list[list[str]] = []
    for labels in users.values():  # labels sharing any GAN form one family
        joined = [f for f in families if set(f) & set(labels)]
        merged = [label for f in joined for label in f] + [label for label in labels if not any(label in f for f in joined)]
        families = [f for f in families if f not in joined] + [merged]
    family_of = {label: ", ".join(f) for f in families for label in f}
    return groups(per_gan, lambda r: family_of[label_of(r)])


def command(protocol: str) -> str:
    """The command that computes (or resumes) `protocol`, as the tables quote it."""
    return f"`python benchmarks/class_inversion.py --protocol {protocol}`"


def seed_means(runs: list[dict], name: str) -> list[dict]:
    """One run per seed for the calibration `name`: where a seed has several (random latents of a family's GANs, when
    its rows attacked targets trained on different machines and so searched different GANs), their baselines'
    mean, so that an interval is over seeds, as everywhere, not over (seed, GAN) pairs."""
    out = []
    for mine in groups(runs, lambda r: r["seed"]).values():
        values = [r["baselines"][name] for r in mine]
        mean = {key: sum(v[key] for v in values) / len(values) if all(isinstance(v.get(key), (int, float)) for v in values) else None for key in values[0]}
        out.append({**mine[0], "baselines": {**mine[0]["baselines"], name: mean}})
    return out


def costs(rows: list[dict]) -> list[str | None]:
    """Mean (range) over seeds of the search's seconds and of the GAN's training seconds. A run that trained its GAN
    counts that training in its `seconds`; it is taken out here, so the search column compares like with like and the
    GAN column shows the one-off cost of the prior (the same GAN serves every row of a seed that shares it)."""
    gans = [(r.get("attack_details") or {}).get("gan") or {} for r in rows]
    search = [{"s": r["seconds"] - (g.get("seconds", 0.0) if g.get("cached") is False else 0.0)} for r, g in zip(rows, gans) if isinstance(r.get("seconds"), (int, float))]
    return [spread(search, "s"), spread([{"s": g["seconds"]} for g in gans if "seconds" in g], "s")]


def n_per_seed(rows: list[dict]) -> int | str:
    """Inversions per seed: one number where every run agrees."""
    counts = sorted({r["num_targets"] for r in rows})
    return counts[0] if len(counts) == 1 else "/".join(map(str, counts))


def render(protocol: str, rows: list[dict], runs: list[benchmark.Run], per_class: int) -> str:
    by_label = groups(rows, label_of)
    data = PROTOCOLS[protocol]["data"]
    classes = len(set(data.get("private_classes") or range(5)))
    judged = 10 if data.get("judge_classes") == "all" else classes  # mnist5k's judge: all 10 digits
    lines = [f"## Protocol `{protocol}`: {classes} private classes, {per_class} inversions per class per seed, a judge of {judged} classes "
             f"(chance top-1 {1 / judged:.3f})", ""]
    lines.append(benchmark.provenance(runs, rows))
    metrics = metrics_of(protocol)
    columns = ["row", "seeds", "n/seed", *metrics, "target acc", "judge acc", "gradients", "queries", "search s", "GAN s"]
    body = []
    for label, mine in by_label.items():
        body.append(
            [label, len(mine), n_per_seed(mine)]
            + [metric_interval(mine, m) or "n/a" for m in metrics]
            + [metric_interval(mine, m) for m in ("target_test_acc", "evaluator_test_acc")]
            + [spread(mine, m) for m in ("gradients", "queries")] + costs(mine)
        )
    for name, description in CALIBRATION.items():
        having = [r for r in rows if name in (r.get("baselines") or {})]
        if not having:
            continue
        # one calibration value per seed (the trivial answers depend on the seed's split, not on the attack); random
        # latents once per GAN and seed, under the rows that share that GAN
        per_seed = [next(iter(g)) for g in groups(having, lambda r: (r["seed"], gan_of(r) if name == "random-latents" else "")).values()]
        for source, group in (gan_families(per_seed, having) if name == "random-latents" else {"": per_seed}).items():
            group = seed_means(group, name)
            body.append(
                [f"calibration: {description}{f' ({source})' if source else ''}", len(group), n_per_seed(group)]
                + [metric_interval(group, m, lambda r, m=m, n=name: r["baselines"][n].get(m)) or "n/a" for m in metrics]
                + [None] * (len(columns) - 3 - len(metrics))  # no target, judge or cost of its own
            )
    lines.append(table(columns, body))
    resume = f"{command(protocol)} resumes it"

    def not_run_yet(labels: tuple[str, str]) -> str:
        return f"not run yet ({', '.join(label for label in labels if knn.get(label) is None)}; {resume})"
    planned = PROTOCOLS[protocol]["rows"]
    not_run = [label for label in planned if label not in by_label]
    if not_run and not PROTOCOLS[protocol].get("explain"):  # an explain protocol says it per reversal
        lines += ["", f"**Not run yet in this protocol: {', '.join(not_run)}; {resume}.**"]
    knn = {label: metric_interval(mine, "knn_ratio") for label, mine in by_label.items()}
    lines += ["", "### Ranking by knn_ratio (lower is better)", ""]
    ranked = sorted((iv.mean, label) for label, iv in knn.items() if iv is not None)
    lines.append(", ".join(f"{label} {knn[label].text()}" for _, label in ranked))
    separated = [
        (a, b) for i, (_, a) in enumerate(ranked) for _, b in ranked[i + 1 :] if compare(knn[a], knn[b], higher_is_better=False) == "better"
    ]
    lines += ["", f"Pairs whose knn_ratio intervals do not overlap: {len(separated)}" + (": " + "; ".join(f"{a} < {b}" for a, b in separated) if separated else "."), ""]
    pairs = PROTOCOLS[protocol].get("pairs", [])
    if pairs:
        lines += ["### What the CPU budget changes", ""]
        for cpu, published in pairs:
            if knn.get(cpu) is None or knn.get(published) is None:
                lines.append(f"- {cpu} vs {published}: {not_run_yet((cpu, published))}.")
                continue
            verdict = compare(knn[cpu], knn[published], higher_is_better=False)
            word = {"better": "better at the smaller budget", "worse": "worse at the smaller budget", "not distinguishable": "not distinguishable"}[verdict]
            budgets = f"{ROWS[cpu][1] or 'defaults'} vs {ROWS[published][1] or 'defaults'}"
            lines.append(f"- {cpu} vs {published} ({budgets}): knn_ratio {knn[cpu].text()} vs {knn[published].text()}: **{word}**.")
        lines.append("")
    orderings = []
    for better, worse, source in ORDERINGS:
        if knn.get(better) is None or knn.get(worse) is None:
            if better in planned and worse in planned:
                orderings.append(f"- {source}: {not_run_yet((better, worse))}.")
            continue
        verdict = compare(knn[better], knn[worse], higher_is_better=False)
        word = {"better": "confirmed", "worse": "reversed", "not distinguishable": "not distinguishable"}[verdict]
        tested = ""
        if word == "reversed" and not PROTOCOLS[protocol].get("explain"):
            where = EXPLAIN.get((protocol, better, worse), (None,))[0]
            elsewhere = [f"`{w}` on {b}" for (b, x, y), (w, _) in EXPLAIN.items() if (x, y) == (better, worse) and b != protocol]
            tested = (f" (where it comes from: protocol `{where}`)" if where
                      else f" (unexplained on {protocol}{'; tested elsewhere by ' + ', '.join(elsewhere) if elsewhere else ''})")
        orderings.append(f"- {source}: **{word}** (knn_ratio {knn[better].text()} vs {knn[worse].text()}){tested}")
    if orderings:
        lines += ["### The literature's orderings", "", *orderings]
    if PROTOCOLS[protocol].get("explain"):
        lines += explain(by_label, protocol)
    return "\n".join(lines) + "\n"


def explain(by_label: dict, protocol: str) -> list[str]:
    """Per ordering the protocol tests (EXPLAIN): the rows that test where its reversal comes from, each against both ends of the ordering.

    Every variant ran on the same seeds, targets and GANs as the rows it is compared with (the checkpoints' hashes
    are checked and the table says how many seeds share them); verdicts are by non-overlap of the knn_ratio
    intervals, as everywhere in the table."""
    lines: list[str] = []
    for (better, worse), labels in explained(protocol).items():
        present = [label for label in labels if label in by_label]
        ends = [end for end in (better, worse) if end in by_label]
        if not present or not ends:
            continue
        lines += ["", f"### Where '{worse} above {better}' comes from (rows that test it)", ""]
        missing = [end for end in (better, worse) if end not in ends]
        untested = [label for label in labels if label not in present]
        if missing or untested:
            compared = f" The rows that test the reversal are compared with {ends[0]} only." if missing else ""
            lines += [f"**Partial: {', '.join(missing + untested)} not run yet in this protocol; {command(protocol)} resumes it.{compared}**", ""]
        shown = {**{end: by_label[end] for end in ends}, **{label: by_label[label] for label in present}}
        shown_metrics = ["knn_ratio", "diversity_ratio", "attack_acc_top1", "fid_eval"]
        columns = ["row", "seeds", "n/seed", *shown_metrics, "gradients", "queries", "search s", "GAN s"]
        lines.append(table(columns, [[label, len(mine), n_per_seed(mine), *(metric_interval(mine, m) or "n/a" for m in shown_metrics),
                                      *(spread(mine, m) for m in ("gradients", "queries")), *costs(mine)] for label, mine in shown.items()]))
        lines.append("")
        knn = {label: metric_interval(mine, "knn_ratio") for label, mine in shown.items()}
        spread_of = {label: metric_interval(mine, "diversity_ratio") for label, mine in shown.items()}
        for label in present:
            versus = [f"{compare(knn[label], knn[end], higher_is_better=False)} than {end}".replace("not distinguishable than", "not distinguishable from")
                      for end in ends]
            lines.append(f"- {label}: knn_ratio {knn[label].text()}: {'; '.join(versus)}" + (f" (diversity_ratio {spread_of[label].text()})." if spread_of[label] else "."))
        if not missing and spread_of[better] and spread_of[worse]:
            verdict = compare(spread_of[worse], spread_of[better])
            word = {"better": "more varied than", "worse": "less varied than", "not distinguishable": "not distinguishable from"}[verdict]
            lines.append(f"- Within-class variety (diversity_ratio; real held-out images: 1): {worse}'s inversions {spread_of[worse].text()} are {word} "
                         f"{better}'s {spread_of[better].text()}.")
        targets = groups([r for mine in shown.values() for r in mine], lambda r: r["seed"])
        shared = [seed for seed, runs in targets.items() if len({(r["checkpoints"]["target_sha256"], r["checkpoints"]["evaluator_sha256"]) for r in runs}) == 1]
        lines.append(f"- Seeds whose rows all attacked the same target weights and were judged by the same judge: {len(shared)} of {len(targets)}.")
    return lines


def main() -> None:
    own = ", ".join(f"{name} 0..{spec['seeds'] - 1}" for name, spec in PROTOCOLS.items() if "seeds" in spec)
    p = benchmark.parser(__file__, __doc__, seeds_of=f"each protocol's: 0..{SEEDS - 1}, {own}")
    p.add_argument("--protocol", choices=list(PROTOCOLS), nargs="+", default=[name for name in SHOWN if base_of(name) != "mnist5k"])
    p.add_argument("--attacks", nargs="+", choices=list(ROWS), default=None, help="rows to run (default: the protocol's); the others are kept in the store")
    p.add_argument("--per-class", type=int, default=None, help="inversions per class (default: the protocol's, 2 with --quick)")
    args = p.parse_args()
    sections = ["# Class-representative inversion", "", __doc__.split("\n\n", 2)[2].strip(), ""]
    for protocol in SHOWN:  # every protocol's section, whichever ran: the others are rendered from their stores
        spec = PROTOCOLS[protocol]
        default = list(range(spec.get("seeds", SEEDS)))
        seeds = (args.seeds or default)[: 1 if args.quick else None]
        per_class = args.per_class or (2 if args.quick else spec["per_class"])
        labels = [label for label in spec["rows"] if args.attacks is None or label in args.attacks]
        # row by row, every seed of a row before the next row: an interrupted run leaves complete rows behind
        grid = [config(protocol, row, seed, per_class) for row in labels for seed in seeds]
        every = [config(protocol, row, seed, per_class) for row in spec["rows"] for seed in sorted({*default, *seeds})]  # what the table shows
        out = args.out / protocol
        if args.render or not grid or protocol not in args.protocol:
            result = benchmark.run(every, argparse.Namespace(**{**vars(args), "render": True}), out=out) if (out / "results.sqlite").is_file() else None
        else:
            benchmark.run(grid, args, out=out)
            result = benchmark.run(every, argparse.Namespace(**{**vars(args), "render": True}), out=out)
        if result is not None and result.rows:
            sections.append(render(protocol, result.rows, [result], per_class))
        else:
            sections += [f"## Protocol `{protocol}`", "", f"Not run yet: {command(protocol)} computes it (resumable).", ""]
    md = Path(args.out).with_suffix(".md")
    md.write_text("\n".join(sections))
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
