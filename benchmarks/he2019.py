"""Reproduce He, Zhang & Lee, "Model Inversion Attacks Against Collaborative Inference" (ACSAC 2019).

Tables 3 (white-box rMLE), 4 (black-box inverse network, by the attacker's data) and 6 (query-free
shadow model) on MNIST LeNet at conv1 and relu2, with the paper's numbers side by side:

    python benchmarks/he2019.py                                    # bundled 5k MNIST subset
    python benchmarks/he2019.py --data idx:/path/train-images-idx3-ubyte.gz --out he2019-full.md

Writes a Markdown table (default benchmarks/results/he2019.md) and the raw rows as JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.runner import prepare, run_experiment
from modelinv.validation import validate
from modelinv.versions import versions

# (table, attack, layer, attacker data, rMLE TV weight) -> paper (PSNR dB, SSIM)
PAPER = {
    ("3", "rmle", "conv1", "-"): (39.69, 0.9969),
    ("3", "rmle", "relu2", "-"): (15.10, 0.5998),
    ("4", "inverse-net", "conv1", "private-train"): (39.64, 0.9887),
    ("4", "inverse-net", "conv1", "public"): (40.72, 0.9950),
    ("4", "inverse-net", "conv1", "uniform-noise"): (14.76, 0.7188),
    ("4", "inverse-net", "relu2", "private-train"): (20.35, 0.7334),
    ("4", "inverse-net", "relu2", "public"): (20.81, 0.8046),
    ("4", "inverse-net", "relu2", "uniform-noise"): (7.72, 0.4310),
    ("6", "shadow", "conv1", "private-train"): (17.60, 0.7423),
    ("6", "shadow", "relu2", "private-train"): (9.61, 0.4981),
}
ATTACKER_DATA = {"-": "-", "private-train": "same set", "public": "same distribution", "uniform-noise": "uniform noise"}

# Why a row differs from the paper by more than 3 dB, established by the runs recorded in the results file.
EXPLANATIONS = {
    ("rmle", "conv1"): (
        "conv1 is a linear map from 784 pixels to 8x24x24 = 4,608 outputs with full column rank, so the input is "
        "exactly recoverable; our projected Adam converges to it within float precision (PSNR capped at 100 dB). "
        "The paper's 39.7 dB (RMSE about 1%) reflects its stopping point, not a limit of the attack."
    ),
    ("rmle", "relu2", "tv"): (
        "With the total-variation prior (lambda = 0.01 on our TV, the mean absolute neighbour difference) rMLE "
        "beats the paper's relu2 figure; the row without the prior reproduces the paper's number."
    ),
}


def config(attack: str, layer: str, attacker_data: str, args, params: dict | None = None) -> ExperimentConfig:
    white_box = {"rmle": "client", "shadow": "server"}.get(attack, "none")
    return validate(
        ExperimentConfig,
        {
            "seed": args.seed,
            "data": {"source": args.data},
            "target": {"arch": "lenet"},
            "access": {"observe": "features", "layer": layer, "white_box": white_box},
            "attack": {"name": attack, "params": params or {}},
            "attacker_data": "public" if attacker_data == "-" else attacker_data,
            "num_targets": args.num_targets,
            "metrics": ["psnr", "ssim", "mse", "attack_acc_top1"],
        },
    )


def plan() -> list[tuple[str, str, str, str, dict]]:
    """(table, attack, layer, attacker data, attack params) of every row."""
    rows = [("3", "rmle", layer, "-", {"tv_weight": 0.0}) for layer in ("conv1", "relu2")]
    rows.append(("3", "rmle", "relu2", "-", {"tv_weight": 1e-2}))
    rows += [
        ("4", "inverse-net", layer, data, {})
        for layer in ("conv1", "relu2")
        for data in ("private-train", "public", "uniform-noise")
    ]
    rows += [("6", "shadow", layer, "private-train", {"tv_weight": 0.0}) for layer in ("conv1", "relu2")]
    return rows


def explain(attack: str, layer: str, params: dict, gap: float) -> str:
    if abs(gap) <= 3:
        return ""
    key = (attack, layer, "tv") if params.get("tv_weight") else (attack, layer)
    return EXPLANATIONS.get(key, "UNEXPLAINED: differs from the paper by more than 3 dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist5k", help="mnist5k, or idx:PATH for the full MNIST training set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-targets", type=int, default=64, help="private test images inverted per row")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "he2019.md")
    args = parser.parse_args()

    start = time.perf_counter()
    setting = prepare(config("rmle", "conv1", "-", args))
    results = []
    for table, attack, layer, data, params in plan():
        row, _ = run_experiment(config(attack, layer, data, args, params), setting)
        paper = PAPER[(table, attack, layer, data)]
        row.update(table=table, params=params, paper_psnr=paper[0], paper_ssim=paper[1])
        results.append(row)
        print(f"table {table} {attack:11s} {layer:5s} {ATTACKER_DATA[data]:17s} {params}: PSNR {row['psnr']:.2f} (paper {paper[0]})", file=sys.stderr)
    total = time.perf_counter() - start

    first = results[0]
    lines = [
        "# He et al. (ACSAC 2019) on MNIST LeNet: ours against the paper",
        "",
        f"Produced by `python benchmarks/he2019.py --data {args.data} --seed {args.seed} --num-targets {args.num_targets}` "
        f"in {total:.0f} s on {platform.machine()} ({platform.processor() or 'cpu'}), torch {versions()['torch']}.",
        "",
        f"- Data: `{args.data}`"
        + (
            " (the 5,000-image MNIST subset bundled offline; the paper trains on the 60,000 MNIST training images). "
            if args.data == "mnist5k"
            else ". "
        )
        + f"Split `same-distribution`: {first['data_hashes'] and len(setting.splits.private_train)} private training images "
        f"(the target's, and the attacker's 'same set'), {len(setting.splits.public)} public images from the same "
        f"distribution, {len(setting.splits.private_test)} private test images of which {args.num_targets} are inverted.",
        f"- Target LeNet test accuracy {first['target_test_acc']:.4f}; evaluation classifier (`eval-cnn`) test accuracy "
        f"{first['evaluator_test_acc']:.4f}. `attack acc` is the evaluator's top-1 accuracy on the reconstructions.",
        "- PSNR with peak 1.0 on [0, 1] images, per image then averaged (capped at 100 dB for exact recovery); SSIM from torchmetrics.",
        "",
        "| table | attack | layer | attacker data | params | PSNR (dB) | SSIM | attack acc | paper PSNR | paper SSIM | PSNR - paper | queries | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for r in results:
        gap = r["psnr"] - r["paper_psnr"]
        note = explain(r["attack"], r["layer"], r["params"], gap)
        mark = ""
        if note:
            notes.append(note) if note not in notes else None
            mark = f" [{notes.index(note) + 1}]"
        data = ATTACKER_DATA["-" if r["attack"] == "rmle" else r["attacker_data"]]
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "defaults"
        lines.append(
            f"| {r['table']} | {r['attack']} | {r['layer']} | {data} | {params} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
            f"{r['attack_acc_top1']:.3f} | {r['paper_psnr']:.2f} | {r['paper_ssim']:.4f} | {gap:+.2f}{mark} | {r['queries']} | {r['seconds']:.1f} |"
        )
    if notes:
        lines += ["", "Rows more than 3 dB from the paper:", ""]
        lines += [f"{i}. {note}" for i, note in enumerate(notes, start=1)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
