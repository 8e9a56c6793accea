"""Tabular attribute inference (Fredrikson et al., USENIX Security 2014) on breast-cancer and planted synthetic data.

    python benchmarks/tabular.py                                  # every dataset, target and defense, seeds 0-2
    python benchmarks/tabular.py --datasets planted:0 planted:2   # some datasets
    python benchmarks/tabular.py --quick                          # one seed, three datasets, short training: checks that it runs
    python benchmarks/tabular.py --render                         # rewrite the Markdown from the stored runs

For each dataset, target model (torch `logreg`, `tabular-mlp`; scikit-learn `sk-logreg`, `sk-tree`) and
defense (none; DP-SGD at two target epsilons, torch models only; probabilities rounded to one decimal;
label-only output), every attribute attack guesses the sensitive value of up to 1,000 private training (all 318 of breast-cancer)
records. The attacker observes probabilities (or what the output defense leaves of them) and holds the
public split with the sensitive column. Each cell is the advantage over guessing the most common public
value: mean [95% interval over seeds], the attack's accuracy (mean) in brackets. Every setting runs over
the seeds through the one runner into one results store.
"""

from __future__ import annotations

from pathlib import Path

from modelinv.attacks import ATTACKS as ATTACK_REGISTRY
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.grid import run_id
from modelinv.models import MODELS
from modelinv.report import benchmark
from modelinv.report.aggregate import Interval, compare, groups, metric_interval
from modelinv.report.markdown import table
from modelinv.validation import validate

DATASETS = {
    "breast-cancer": {"source": "breast-cancer", "tabular": {"sensitive": "mean radius", "bins": [6, 12, 15, 30]}},
    **{f"planted:{s}": {"source": f"planted:{s}"} for s in ("0", "0.5", "1", "2")},
}
QUICK_DATASETS = ["breast-cancer", "planted:0", "planted:2"]
TARGETS = ("logreg", "tabular-mlp", "sk-logreg", "sk-tree")
DEFENSES = {
    "none": None,
    "dp-sgd eps=8": {"name": "dp-sgd", "params": {"target_epsilon": 8.0}},
    "dp-sgd eps=1": {"name": "dp-sgd", "params": {"target_epsilon": 1.0}},
    "round(1)": {"name": "round", "params": {"decimals": 1}},
    "label-only": {"name": "label-only"},
}
ATTACKS = {
    "bb output": ({"name": "fredrikson-attr"}, "none"),
    "bb true label": ({"name": "fredrikson-attr", "params": {"evidence": "label"}}, "none"),
    "wb true label": (
        {"name": "fredrikson-attr-wb", "params": {"evidence": "label"}}
        if "fredrikson-attr-wb" in ATTACK_REGISTRY  # the white-box attack, registered on its own
        else {"name": "fredrikson-attr", "params": {"variant": "white-box", "evidence": "label"}},
        "full",
    ),
    "inverse-attr": ({"name": "inverse-attr"}, "none"),
}
TRAIN = {"epochs": 40}
NUM_TARGETS = 1000
# breast-cancer has fewer private training records (318 in the same-distribution split): every one of them is
# attacked (the runner refuses a num_targets above what the split holds rather than clamping it silently)
NUM_TARGETS_OF = {"breast-cancer": 318}
NEAR_ZERO = 0.02  # |advantage| below this counts as no leak at planted strength 0


def config(data: dict, target: str, defense: dict | None, attack: str, seed: int, quick: bool) -> ExperimentConfig:
    spec, white_box = ATTACKS[attack]
    return validate(
        ExperimentConfig,
        {
            "seed": seed,
            "data": data,
            "target": {"arch": target, "train": {"epochs": 5} if quick else TRAIN},
            "access": {"observe": "probs", "white_box": white_box},
            "attack": spec,
            "defense": defense,
            "num_targets": min(200 if quick else NUM_TARGETS, NUM_TARGETS_OF.get(data["source"], NUM_TARGETS)),
        },
    )


def applies(target: str, defense: str) -> bool:
    """DP-SGD trains by gradient: it applies to the torch targets only."""
    return not (defense.startswith("dp-sgd") and MODELS.info(target).get("fitted_by"))


# ---------------------------------------------------------------------------------------------- rendering


def advantage(rows: list[dict]) -> str:
    """'+0.286 [0.25, 0.32] (0.695)': the advantage interval and the mean attack accuracy."""
    adv, acc = metric_interval(rows, "attr_advantage"), metric_interval(rows, "attr_acc")
    if adv is None:
        return "-"
    return f"{'+' if adv.mean >= 0 else ''}{adv.text()} ({acc.mean:.3f})"


def calibration(rows: list[dict], metric: str) -> tuple[Interval | None, Interval | None]:
    """A metric that does not depend on the target or the attack (the baseline, the ideal predictor): one value per seed,
    and its advantage over the baseline."""
    per_seed = [g[0] for g in groups(rows, lambda r: r["seed"]).values()]
    return (metric_interval(per_seed, metric), metric_interval(per_seed, metric, lambda r: r[metric] - r["attr_baseline_acc"], (-1.0, 1.0)))  # a difference of accuracies


def decided(i: Interval | None, low: float, high: float) -> str:
    """'inside' when the whole interval lies in [low, high], 'outside' when it lies wholly outside it, else 'undecided'."""
    if i is None or i.low is None:
        return "undecided"
    if low <= i.low and i.high <= high:
        return "inside"
    if i.high < low or i.low > high:
        return "outside"
    return "undecided"


def planted_section(cell: dict, datasets: list[str], seeds: list[int]) -> list[str]:
    planted = [d for d in datasets if d.startswith("planted:")]
    if not planted:
        return []
    lines = ["", "## Advantage against the planted dependency (no defense)", ""]
    lines += ["Strength 0: the label ignores the sensitive value; the advantage should be about 0. It should grow with the strength.", ""]
    body = [[target, attack, *(advantage(cell.get((d, target, "none", attack), [])) for d in planted)] for target in TARGETS for attack in ATTACKS]
    lines.append(table(["target", "attack", *(f"strength {d.split(':')[1]}" for d in planted)], body))
    k = len(seeds)
    if planted[0] == "planted:0":
        verdicts = {
            (t, a): decided(metric_interval(cell.get(("planted:0", t, "none", a), []), "attr_advantage"), -NEAR_ZERO, NEAR_ZERO)
            for t in TARGETS for a in ATTACKS if cell.get(("planted:0", t, "none", a))
        }
        inside = [f"{t} / {a}" for (t, a), v in verdicts.items() if v == "inside"]
        outside = [f"{t} / {a}" for (t, a), v in verdicts.items() if v == "outside"]
        open_ = [f"{t} / {a}" for (t, a), v in verdicts.items() if v == "undecided"]
        lines += [
            "",
            f"At strength 0, of {len(verdicts)} target/attack pairs, the advantage interval lies within +-{NEAR_ZERO} for {len(inside)}, "
            f"wholly outside it for {len(outside)}" + (f" ({', '.join(outside)}; unexplained: no row here tests why)" if outside else "")
            + f", and is not decided at {k} seed{'s' if k != 1 else ''} for {len(open_)}" + (f" ({', '.join(open_)})" if open_ and len(open_) < len(verdicts) else "") + ".",
        ]
    drops = []
    for t in TARGETS:
        for a in ATTACKS:
            ivs = [metric_interval(cell.get((d, t, "none", a), []), "attr_advantage") for d in planted]
            for (d0, i0), (d1, i1) in zip(zip(planted, ivs), zip(planted[1:], ivs[1:])):
                if i0 is not None and i1 is not None and compare(i1, i0) == "worse":
                    drops.append(f"{t} / {a} from {d0} to {d1}")
    lines.append(f"Advantages that fall, intervals separated, from one strength to the next: {'; '.join(drops) if drops else 'none'}.")
    return lines


def dataset_section(name: str, cell: dict, mine: list[dict]) -> list[str]:
    n = {r["num_targets"] for r in mine}
    base, _ = calibration(mine, "attr_baseline_acc")
    ideal, ideal_adv = calibration(mine, "attr_ideal_acc")
    lines = ["", f"## {name}", ""]
    lines.append(f"Attacked records: {', '.join(map(str, sorted(n)))} private training records per seed.")
    lines += ["", "Cells: advantage of each attack over the baseline [95% interval] (mean attack accuracy in brackets).", ""]
    body = []
    for target in TARGETS:
        for defense in (d for d in DEFENSES if applies(target, d)):
            group = [r for a in ATTACKS for r in cell.get((name, target, defense, a), [])]
            if not group:
                continue
            seeds = len({r["seed"] for r in group})
            group = [g[0] for g in groups(group, lambda r: r["seed"]).values()]  # one target per seed, shared by the attacks
            epsilon = metric_interval(group, "epsilon") if DEFENSES[defense] and DEFENSES[defense]["name"] == "dp-sgd" else "-"
            body.append([target, defense, seeds, epsilon, metric_interval(group, "target_test_acc")]
                        + [advantage(cell.get((name, target, defense, a), [])) for a in ATTACKS])
    signed = lambda i: "-" if i is None else f"{'+' if i.mean >= 0 else ''}{i.text()}"  # noqa: E731
    body.append(["calibration: most common public value", "-", len({r["seed"] for r in mine}), "-", "-"]
                + [f"+0 ({base.mean:.3f})" if base else "-"] * len(ATTACKS))
    body.append(["calibration: ideal predictor (public records, sensitive column in full)", "-", len({r["seed"] for r in mine}), "-", "-"]
                + [f"{signed(ideal_adv)} ({ideal.mean:.3f})" if ideal else "-"] * len(ATTACKS))
    lines.append(table(["target", "defense", "seeds", "epsilon", "target acc", *ATTACKS], body))
    if ideal is not None:
        inv = [(t, metric_interval(cell.get((name, t, "none", "inverse-attr"), []), "attr_acc")) for t in TARGETS]
        lines.append(
            f"Baseline accuracy {base.text()}; ideal predictor accuracy {ideal.text()}. inverse-attr (no defense) against the ideal "
            "predictor: " + "; ".join(f"{t} {i.text()} ({compare(i, ideal)})" for t, i in inv if i is not None) + "."
        )
    return lines


def render(rows: list[dict], keys: dict[str, tuple], datasets: list[str], run: benchmark.Run) -> str:
    cell: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["run_id"] in keys:
            cell.setdefault(keys[r["run_id"]], []).append(r)
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        "# Tabular attribute inference: breast-cancer and planted synthetic data",
        "",
        benchmark.provenance([run], rows),
        "- Attacks (the attacker observes probabilities, or what the output defense leaves of them): `fredrikson-attr` black-box with the victim's",
        "  released output as evidence (`bb output`), black-box and white-box with the victim's true label as evidence (`bb true label`, `wb true label`),",
        "  and `inverse-attr`. Each guesses the sensitive value of private *training* records, as Fredrikson et al. attack the training cohort.",
        "- Advantage = attack accuracy - accuracy of always guessing the most common public value (the first calibration row).",
        "- breast-cancer: sensitive column `mean radius`, discretised into bins [6, 12), [12, 15), [15, 30]; planted:S: see `modelinv.data.planted`",
        "  (label depends on the sensitive level with strength S).",
        "- DP-SGD (Opacus, delta 1e-5) is applied to the torch targets at target epsilon 8 and 1 (the epsilon column is the accountant's value after",
        "  training); scikit-learn models are fitted without it. The targets' input standardisation uses the training rows' mean and standard",
        "  deviation, which DP-SGD's epsilon does not cover. DP-SGD bounds what the weights reveal about whether a record was trained on;",
        "  it does not bound how a model's scores on a record depend on that record's sensitive value, which `bb output` reads.",
        "- The ideal predictor (second calibration row) needs no model: it is trained on the public records with the sensitive column, from the",
        "  other columns and the true label. Where it is far above the baseline the sensitive column follows from the other columns;",
        "  each dataset's last line compares `inverse-attr`, which learns from those columns too, with it.",
    ]
    lines += planted_section(cell, datasets, seeds)
    for name in datasets:
        mine = [r for key, group in cell.items() if key[0] == name for r in group]
        if mine:
            lines += dataset_section(name, cell, mine)
    return "\n".join(lines) + "\n"


def main() -> None:
    p = benchmark.parser(__file__, __doc__, seeds=3)
    p.add_argument("--datasets", nargs="+", default=None, choices=list(DATASETS), help=f"default: all ({', '.join(QUICK_DATASETS)} with --quick)")
    args = p.parse_args()
    datasets = args.datasets or (QUICK_DATASETS if args.quick else list(DATASETS))
    seeds = args.seeds[:1] if args.quick else args.seeds
    grid, keys = [], {}
    for name in datasets:
        for target in TARGETS:
            for defense in (d for d in DEFENSES if applies(target, d)):
                for seed in seeds:
                    for attack in ATTACKS:
                        cfg = config(DATASETS[name], target, DEFENSES[defense], attack, seed, args.quick)
                        grid.append(cfg)
                        keys[run_id(cfg)] = (name, target, defense, attack)
    result = benchmark.run(grid, args)
    md = Path(args.out).with_suffix(".md")
    md.write_text(render(result.rows, keys, datasets, result))
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
