"""The main job (`make demo`): split-inference inversion on real MNIST, end to end on a laptop.

LeNet on `mnist5k` is attacked at a shallow (conv1) and a deep (relu2) cut by rMLE (white-box) and an
inverse network (black-box), as in He et al. (ACSAC 2019); then the split-NN scenario: a server
receiving the 500-d client output of `splitnn-mlp` inverts it with a decoder trained only on
cross-domain data (scikit-learn digits, resized), never on MNIST.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.runner import dump_config, run_experiment, write_json
from modelinv.report.grid import save_grid
from modelinv.validation import validate

COLUMNS = ("attack", "model", "layer", "psnr", "ssim", "attack_acc_top1", "queries", "seconds")


def demo_configs(seed: int = 0) -> list[tuple[str, ExperimentConfig]]:
    """(name, config) of every demo run."""
    lenet_runs = [
        ("rmle", layer, {"observe": "features", "layer": layer, "white_box": "client"}) for layer in ("conv1", "relu2")
    ] + [("inverse-net", layer, {"observe": "features", "layer": layer}) for layer in ("conv1", "relu2")]
    runs = [
        (f"{attack}-lenet-{layer}", {"seed": seed, "target": {"arch": "lenet"}, "access": access, "attack": {"name": attack}})
        for attack, layer, access in lenet_runs
    ]
    runs.append(
        (
            "inverse-net-splitnn-mlp-crossdomain",
            {
                "seed": seed,
                "data": {"source": "mnist5k", "split": "cross-domain", "public_source": "digits"},
                "target": {"arch": "splitnn-mlp"},
                "access": {"observe": "features", "layer": "relu1"},
                "attack": {"name": "inverse-net"},
            },
        )
    )
    return [(name, validate(ExperimentConfig, raw)) for name, raw in runs]


def run_demo(out: Path, seed: int = 0, on_row=None) -> list[dict[str, Any]]:
    """Run every demo config; after each, rewrite `out/results.json` so an interruption keeps finished runs."""
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for name, cfg in demo_configs(seed):
        row, images = run_experiment(cfg)
        dump_config(out / "configs" / f"{name}.yaml", cfg)
        row["grid"] = str(save_grid(out / f"{name}.png", images["originals"], images["reconstructions"]))
        rows.append(row)
        write_json(out / "results.json", rows)
        if on_row is not None:
            on_row(row)
    return rows
