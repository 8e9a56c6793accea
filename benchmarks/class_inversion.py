"""Class-representative inversion on the GMI/KEDMI MNIST protocol, plus the MI-Face speed/quality check.

    python benchmarks/class_inversion.py                      # all attacks, seeds 0 1 2
    python benchmarks/class_inversion.py --attacks mi-face gmi --seeds 0
    python benchmarks/class_inversion.py --sections attacks --attacks mirror-bb brep-mi rlb-mi   # add rows, keep the others
    python benchmarks/class_inversion.py --sections                   # rewrite the Markdown from the stored JSON

Protocol: `class-disjoint` split of mnist5k (private digits 0-4 train a LeNet target and the
`eval-cnn` judge; public digits 5-9 are the attacker's data, for GANs). Every attack inverts each
private class `--per-class` times; the table gives mean +- std over seeds of the judge's top-1/top-5
accuracy on the inversions, knn_dist, knn_ratio (knn_dist relative to real held-out images of the
same classes), fid_eval, target gradient evaluations, black-box queries and wall time. A blank image and
the mean public image are scored alongside as calibration. The black-box rows (mirror-bb, rlb-mi on
probabilities, brep-mi on labels) see the target only through a query oracle; the `+lomma` rows are the
white-box GAN attacks with the LOMMA option, on the same seeds as the rows without it. Rerunning some
`--attacks` replaces only those rows in the JSON: every row keeps the command, seeds and wall time of the
run that produced it. Writes Markdown (default benchmarks/results/class_inversion.md) and the raw rows as
JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from modelinv.attacks import ATTACKS, Targets
from modelinv.experiment.config import CLASS_METRICS, ExperimentConfig
from modelinv.experiment.runner import Setting, prepare, run_experiment
from modelinv.metrics import MetricInputs, compute
from modelinv.oracle import ThreatModel, WhiteBox
from modelinv.validation import validate
from modelinv.versions import versions

# Benchmark rows: label -> (registered attack, parameter overrides). "mi-face-paper" is Fredrikson et al.'s
# Algorithm 1 as published (5000 steps of lr 0.1, window 100, no jitter or blur); "mi-face" uses modelinv's defaults.
ROWS = {
    "mi-face": ("mi-face", {}),
    "mi-face-paper": ("mi-face", {"iterations": 5000, "lr": 0.1, "window": 100, "jitter": 0, "blur_sigma": 0.0}),
    "gmi": ("gmi", {}),
    "kedmi": ("kedmi", {}),
    "plg-mi": ("plg-mi", {}),
    "gmi+lomma": ("gmi", {"lomma": True}),
    "kedmi+lomma": ("kedmi", {"lomma": True}),
    "plg-mi+lomma": ("plg-mi", {"lomma": True}),
    "mirror-bb": ("mirror-bb", {}),
    "brep-mi": ("brep-mi", {}),
    "rlb-mi": ("rlb-mi", {}),
}
# What each row's attacker sees: the black-box rows query the target's output, every other row has its weights.
ACCESS = {"mirror-bb": {"observe": "probs"}, "rlb-mi": {"observe": "probs"}, "brep-mi": {"observe": "label"}}
WHITE_BOX = {"observe": None, "white_box": "full"}
SUMMARY = ("attack_acc_top1", "attack_acc_top5", "knn_dist", "knn_ratio", "fid_eval", "gradients", "queries", "seconds")


def config(row: str, seed: int, per_class: int, target: str = "lenet", split: str = "class-disjoint") -> ExperimentConfig:
    attack, params = ROWS[row]
    return validate(
        ExperimentConfig,
        {
            "seed": seed,
            "data": {"source": "mnist5k", "split": split},
            "target": {"arch": target},
            "access": ACCESS.get(row, WHITE_BOX),
            "attack": {"name": attack, "params": params},
            "per_class": per_class,
        },
    )


def calibration(setting: Setting, per_class: int) -> dict[str, dict[str, float]]:
    """The class metrics of trivial answers: a blank image, and the mean public image, for every class."""
    k = setting.splits.private_train.num_classes
    labels = torch.arange(k).repeat_interleave(per_class)
    shape = setting.splits.private_train.input_shape
    answers = {"blank image": torch.zeros(len(labels), *shape), "mean public image": setting.splits.public.x.mean(0).expand(len(labels), *shape)}
    rows = {}
    for name, images in answers.items():
        inputs = MetricInputs(images, labels, evaluator=setting.evaluator, private=setting.splits.private_train, holdout=setting.splits.private_test)
        rows[name] = compute(CLASS_METRICS, inputs)
    return rows


def mi_face_speed(repeats: int = 5) -> dict[str, float]:
    """MI-Face on all 10 classes of an MLP (784-500-500-10) on mnist5k as one batched optimisation of 300 steps.

    Also scores, under the same judge, a blank image and Algorithm 1 with the paper's settings, which place
    the knn_ratio scale of this judge against the issue's calibration (blank about 2.7x there).
    """
    cfg = config("mi-face", 0, 1, target="mlp", split="same-distribution")
    setting = prepare(cfg)
    threat = ThreatModel(white_box=WhiteBox(setting.target, "full"))
    classes = torch.arange(10)
    attack = ATTACKS.get("mi-face")(iterations=300)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = attack(threat, Targets(classes=classes), setting.splits.public, seed=0)
        times.append(time.perf_counter() - start)
    paper = ATTACKS.get("mi-face")(**ROWS["mi-face-paper"][1])(threat, Targets(classes=classes), setting.splits.public, seed=0)

    def score(images: torch.Tensor) -> dict[str, float]:
        inputs = MetricInputs(images, classes, evaluator=setting.evaluator, private=setting.splits.private_train, holdout=setting.splits.private_test)
        return compute(["attack_acc_top1", "knn_ratio"], inputs)

    return {
        "median_seconds": statistics.median(times),
        "threads": torch.get_num_threads(),
        **score(result.images),
        "paper": score(paper.images),
        "blank": score(torch.zeros_like(result.images)),
        "target_test_acc": setting.target_meta["metrics"]["test_acc"],
    }


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} +- {statistics.stdev(values):.2g}"


def ordering(rows: list[dict], labels: list[str]) -> list[str]:
    """The literature's claim (generative attacks above MI-Face in top-1), checked on this run's means, and the knn_ratio ranking."""
    mean = {label: {k: statistics.mean(r[k] for r in rows if r["row"] == label) for k in ("attack_acc_top1", "knn_ratio")} for label in labels}
    lines = ["", "## Ordering", ""]
    faces = [label for label in labels if ROWS[label][0] == "mi-face"]
    for label in (label for label in labels if ROWS[label][0] != "mi-face"):
        for face in faces:
            a, b = mean[label]["attack_acc_top1"], mean[face]["attack_acc_top1"]
            verdict = "above" if a > b else ("equal to" if a == b else "below")
            lines.append(f"- {label} mean top-1 {a:.3f} is {verdict} {face}'s {b:.3f}.")
    saturated = [face for face in faces if mean[face]["attack_acc_top1"] == 1.0]
    if saturated:
        lines.append(f"- {', '.join(saturated)} already reach judge top-1 1.0 here, so no attack can exceed them in top-1 on this protocol.")
    for label in (label for label in labels if label in ACCESS):
        a = mean[label]["attack_acc_top1"]
        lines.append(f"- {label} ({ACCESS[label]['observe']} only, no gradients): mean top-1 {a:.3f}, {'above' if a > 0.2 else 'NOT above'} chance (0.2).")
    for label in (label for label in labels if label.endswith("+lomma") and label.removesuffix("+lomma") in mean):
        base = label.removesuffix("+lomma")
        seeds = {r["seed"] for r in rows if r["row"] == label} & {r["seed"] for r in rows if r["row"] == base}
        paired = {a: {k: statistics.mean(r[k] for r in rows if r["row"] == a and r["seed"] in seeds) for k in ("attack_acc_top1", "knn_ratio")} for a in (base, label)}
        lines.append(
            f"- LOMMA on {base} (seeds {' '.join(map(str, sorted(seeds)))}): top-1 {paired[base]['attack_acc_top1']:.3f} -> "
            f"{paired[label]['attack_acc_top1']:.3f}, knn_ratio {paired[base]['knn_ratio']:.2f} -> {paired[label]['knn_ratio']:.2f}."
        )
    ranked = sorted(labels, key=lambda label: mean[label]["knn_ratio"])
    lines.append("- By mean knn_ratio (closest to real private digits first): " + ", ".join(f"{label} {mean[label]['knn_ratio']:.2f}" for label in ranked) + ".")
    return lines


def run_attacks(attacks: list[str], seeds: list[int], per_class: int, done: dict[tuple[str, int], dict]) -> Iterator[dict]:
    """Every attack row on every seed, and the trivial answers' scores per seed, yielded after each row so an
    interrupted run keeps what it finished; the rows in `done` (by attack and seed) are kept, not recomputed."""
    rows, calibrations, finished = [], [], []
    for seed in seeds:
        setting = prepare(config(attacks[0], seed, per_class))
        calibrations.append(calibration(setting, per_class))
        finished.append(seed)
        for attack in attacks:
            row = done.get((attack, seed))
            if row is None:
                row, _ = run_experiment(config(attack, seed, per_class), setting)
                row["row"] = attack
                print(f"seed {seed} {attack}: " + ", ".join(f"{k}={row[k]:.3g}" for k in SUMMARY), file=sys.stderr)
            rows.append(row)
            ran = [a for a in attacks if any(r["row"] == a for r in rows)]
            yield {"attacks": ran, "seeds": list(finished), "rows": list(rows), "calibration": list(calibrations)}


def finished_rows(section: dict | None, command: str) -> tuple[dict[tuple[str, int], dict], int]:
    """The rows an earlier run of the same `command` stored (by attack and seed), and that run's seconds."""
    runs = (section or {}).get("runs", {})
    mine = {a for a, run in runs.items() if run["command"] == command}
    rows = {(r["row"], r["seed"]): r for r in section["rows"] if r["row"] in mine} if mine else {}
    return rows, max((runs[a]["seconds"] for a in mine), default=0)


TARGET, JUDGE = "target_test_acc", "evaluator_test_acc"


def merge_attacks(stored: dict | None, new: dict) -> dict:
    """The stored attacks section with the rows of `new` replacing the stored rows of the same attacks; every
    attack keeps its own run (command, seeds, seconds, threads, versions) and the calibration is kept per seed."""
    provenance = ("command", "seconds", "threads", "versions", "seeds")
    stored = stored or {"attacks": [], "rows": [], "seeds": [], "calibration": []}
    runs = stored.get("runs") or {a: {k: stored[k] for k in provenance} for a in stored["attacks"]}  # one run made a section before rows were merged
    runs = {**runs, **{a: {k: new[k] for k in provenance} for a in new["attacks"]}}
    calibration = {**dict(zip(stored["seeds"], stored["calibration"])), **dict(zip(new["seeds"], new["calibration"]))}
    seeds = sorted(calibration)
    return {
        "attacks": [a for a in ROWS if a in stored["attacks"] or a in new["attacks"]],
        "runs": runs,
        "seeds": seeds,
        "rows": [r for r in stored["rows"] if r["row"] not in new["attacks"]] + new["rows"],
        "calibration": [calibration[seed] for seed in seeds],
    }


def attack_lines(section: dict) -> list[str]:
    rows, attacks, runs = section["rows"], section["attacks"], section["runs"]
    first = [r for r in rows if r["row"] == attacks[0]]
    commands: dict[str, list[str]] = {}
    for attack in attacks:
        commands.setdefault(runs[attack]["command"], []).append(attack)
    lines = [f"`{command}`: {runs[labels[0]]['seconds']} s on {runs[labels[0]]['threads']} threads (rows {', '.join(labels)})." for command, labels in commands.items()]
    lines += [
        "",
        "- Private: mnist5k digits 0-4 (target LeNet and the `eval-cnn` judge are trained on them); public: digits 5-9 "
        "(the attacker's data, for its GAN). Chance accuracy is 0.2.",
        f"- Target test accuracy per seed: {', '.join(f'{r[TARGET]:.4f}' for r in first)}; judge: "
        f"{', '.join(f'{r[JUDGE]:.4f}' for r in first)}.",
        "- `knn_ratio` = knn_dist of the inversions / knn_dist of real held-out private images of the same classes "
        "(1 = as close to the private data as real unseen digits). Accuracy alone rewards adversarial noise and pixel "
        "distance mostly measures brightness, so read accuracy and knn_ratio together.",
        "- Mean +- standard deviation over the seeds listed per row; `gradients` counts target evaluations through the "
        "white-box oracle (GAN and surrogate training included, cached or not), `queries` inputs sent to the black-box oracle (probabilities or labels only: the mirror-bb, "
        "brep-mi and rlb-mi rows); `seconds` is the attack's wall time (GAN and surrogate training excluded: they are "
        "cached), inflated when other jobs shared the 2 cores. `+lomma` rows: the attack above them with `lomma: true`.",
        "",
        "| attack | seeds | " + " | ".join(SUMMARY) + " |",
        "|---|---|" + "---|" * len(SUMMARY),
    ]
    for attack in attacks:
        mine = [r for r in rows if r["row"] == attack]
        seeds = " ".join(str(r["seed"]) for r in mine)
        lines.append(f"| {attack} | {seeds} | " + " | ".join(mean_std([r[k] for r in mine]) for k in SUMMARY) + " |")
    calibrations = section["calibration"]
    for name in calibrations[0]:
        values = [c[name] for c in calibrations]
        lines.append(f"| _{name}_ | {' '.join(map(str, section['seeds']))} | " + " | ".join(mean_std([v[k] for v in values]) if k in values[0] else "-" for k in SUMMARY) + " |")
    return lines + ordering(rows, attacks)


def speed_lines(speed: dict) -> list[str]:
    return [
        "",
        "## MI-Face speed and quality on an MLP (784-500-500-10), all 10 classes of mnist5k",
        "",
        f"`{speed['command']}`: {speed['seconds']} s.",
        "",
        f"One batched optimisation of 10 classes x 300 iterations (default parameters): median {speed['median_seconds']:.3f} s "
        f"over 5 runs, torch threads: {speed['threads']}; judge top-1 accuracy on the inversions {speed['attack_acc_top1']:.2f}; "
        f"knn_ratio {speed['knn_ratio']:.2f} (MLP test accuracy {speed['target_test_acc']:.4f}).",
        f"Targets from the issue: under 0.5 s ({'met' if speed['median_seconds'] < 0.5 else 'NOT met'}), every inversion "
        f"recognised ({'met' if speed['attack_acc_top1'] == 1.0 else 'NOT met'}), knn_ratio <= 1.3 "
        f"({'met' if speed['knn_ratio'] <= 1.3 else 'NOT met'}).",
        "",
        f"Scale of this judge: a blank image scores knn_ratio {speed['blank']['knn_ratio']:.2f} (the issue's calibration "
        f"puts it at about 2.7), and Algorithm 1 with the paper's settings (5000 steps of lr 0.1) scores "
        f"{speed['paper']['knn_ratio']:.2f} with judge accuracy {speed['paper']['attack_acc_top1']:.2f}.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=5)
    parser.add_argument("--sections", nargs="*", default=["attacks", "speed"], choices=["attacks", "speed"],
                        help="rerun only these; the others are kept from the JSON beside --out (none: rewrite the Markdown)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "class_inversion.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = f" --threads {args.threads}" if args.threads else ""

    stored = args.out.with_suffix(".json")
    results = json.loads(stored.read_text()) if stored.is_file() else {}
    missing = {"attacks", "speed"} - set(args.sections) - set(results)
    if missing:
        parser.error(f"no stored {' or '.join(sorted(missing))} section in {stored}: run it too")
    provenance = {"threads": torch.get_num_threads(), "versions": versions()}
    if "attacks" in args.sections:
        command = (f"python benchmarks/class_inversion.py --sections attacks --attacks {' '.join(args.attacks)} "
                   f"--seeds {' '.join(map(str, args.seeds))} --per-class {args.per_class}{threads}")
        done, earlier = finished_rows(results.get("attacks"), command)
        start = time.perf_counter()
        for section in run_attacks(args.attacks, args.seeds, args.per_class, done):
            results = json.loads(stored.read_text()) if stored.is_file() else {}  # rows another run stored meanwhile are kept
            seconds = earlier + round(time.perf_counter() - start)
            results["attacks"] = merge_attacks(results.get("attacks"), {"command": command, "seconds": seconds, **provenance, **section})
            write(args.out, results)
    if "speed" in args.sections:
        start = time.perf_counter()
        speed = mi_face_speed()
        results["speed"] = {"command": f"python benchmarks/class_inversion.py --sections speed{threads}", "seconds": round(time.perf_counter() - start), **provenance, **speed}
    write(args.out, results)
    print(f"wrote {args.out}", file=sys.stderr)


def write(out: Path, results: dict) -> None:
    """The Markdown report and, beside it, the JSON every later run merges into."""
    lines = [
        "# Class-representative inversion: class-disjoint mnist5k",
        "",
        f"Produced by `benchmarks/class_inversion.py` on {platform.machine()}, torch {versions()['torch']}; each part names "
        "the command that produced it.",
        "",
        *attack_lines(results["attacks"]),
        *speed_lines(results["speed"]),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))

if __name__ == "__main__":
    main()
