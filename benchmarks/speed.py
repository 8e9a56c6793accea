"""Speed on this machine: the demo cold and warm by stage, attack steps against the forward+backward floor, and
modelinv's MI-Face beside ART's on the same model.

    python benchmarks/speed.py                  # everything, 3 repetitions (medians)
    python benchmarks/speed.py --quick          # one repetition, fewer steps: checks that it runs
    python benchmarks/speed.py --parts floors   # some parts: demo, shared, floors, art

- demo: `modelinv demo` in a subprocess with an empty model cache (cold), then again with that cache (warm);
  wall time, CPU time and peak resident memory of the process, and the stages the runner records for each run
  (data, target training, judge training, attack, metrics; the rest is start-up, image writing and the report).
- shared: the warm demo again with one CPU-bound process beside it (a busy loop), as on a shared laptop or CI
  runner; the ratio to the warm demo alone measured in the same repetition.
- floors: the time of one optimisation step of rMLE (LeNet conv1 and relu2), MI-Face (LeNet), GMI's latent
  search and the inverse network's training step, measured as the difference between two runs of the attack's own
  loop with different step counts (so set-up is excluded), divided by one forward+backward pass of the same
  model(s) on the same batch (the floor: what any implementation must compute per step); and the input gradient
  of single-channel convolutions, torch's kernel against the one modelinv's models use.
- art: the comparisons of `benchmarks/peers.py` (adversarial-robustness-toolbox, the benchmark-only extra `peers`):
  modelinv `mi-face` and ART's `MIFace` on the same MLP target, judged by the same evaluation classifier (time
  ratios, knn_ratio and judge top-1 at equal step budgets and at each one's defaults), and modelinv's
  `fredrikson-attr` beside ART's attribute-inference attacks on the same tabular targets.

Every figure is the median of the repetitions (each listed; the floors' timings each the best of several calls), with the torch thread count and the load average.
Timings are ratios measured in one run where they are compared; absolute seconds depend on the machine and its load.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import peers  # benchmarks/peers.py, beside this script
import torch
import torch.nn.functional as F

from modelinv.attacks import ATTACKS, Targets
from modelinv.attacks.feature_inversion import RMLEParams, invert_features, schedule
from modelinv.attacks.gmi import GMI
from modelinv.attacks.inverse_net import make_decoder
from modelinv.data.types import ImageDataset
from modelinv.experiment.sweep import load
from modelinv.models import build_model
from modelinv.models.conv import Conv2d
from modelinv.oracle import Features, ThreatModel, WhiteBox
from modelinv.report.benchmark import Parser, produced_by
from modelinv.report.markdown import table
from modelinv.results import ResultsStore

HERE = Path(__file__).resolve().parent
STAGES = ("data", "target", "evaluator", "attack", "metrics")


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------------------------------------- demo


def modelinv_command() -> list[str]:
    return [sys.executable, "-c", "from modelinv.cli import main; main()"]


def run_demo(cache: Path, out: Path, threads: int | None, beside: bool = False) -> dict:
    """One `modelinv demo` in a subprocess: wall, CPU (user+system), peak RSS and the runner's stage times."""
    env = {**os.environ, "MODELINV_CACHE": str(cache), "MODELINV_PROGRESS": "off"}
    command = [*modelinv_command(), "demo", "--out", str(out)] + (["--threads", str(threads)] if threads else [])
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if beside else None
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    if done.returncode != 0:
        raise SystemExit(f"modelinv demo failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    store = ResultsStore(out, create=False)
    try:
        rows = store.rows()
    finally:
        store.close()
    stages = {s: 0.0 for s in STAGES}
    attacks = {}
    for r in rows:
        for k, v in (r.get("timings") or {}).items():
            stages[k] = stages.get(k, 0.0) + v
        stages["attack"] += r["seconds"]
        attacks[f"{r['attack']} {r['model']} {r.get('layer') or ''}".strip()] = r["seconds"]
    quality = {f"{r['attack']} {r['model']} {r.get('layer') or ''}".strip(): (r.get("psnr"), r.get("attack_acc_top1")) for r in rows}
    return {
        "wall": wall,
        "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "maxrss_mb": after.ru_maxrss / 1024,
        "stages": stages,
        "attacks": attacks,
        "quality": quality,
        "threads": sorted({r.get("threads") for r in rows}),
    }


def demo_part(args, work: Path, lines: list[str]) -> None:
    reps = 1 if args.quick else args.reps
    cold, warm, shared = [], [], []
    for rep in range(reps):
        cache = work / f"cache-{rep}"
        cold.append(run_demo(cache, work / f"cold-{rep}", args.demo_threads))
        warm.append(run_demo(cache, work / f"warm-{rep}", args.demo_threads))
        if "shared" in args.parts:
            shared.append(run_demo(cache, work / f"shared-{rep}", args.demo_threads, beside=True))
        print(f"demo repetition {rep}: cold {cold[-1]['wall']:.0f} s, warm {warm[-1]['wall']:.0f} s"
              + (f", warm beside a busy process {shared[-1]['wall']:.0f} s" if shared else ""), flush=True)
    lines += ["## `modelinv demo`", "",
              f"`modelinv demo` in a subprocess, {reps} repetition(s); torch threads per run: {cold[0]['threads']} "
              f"({'--threads ' + str(args.demo_threads) if args.demo_threads else 'the default: the cores divided among the runs in parallel'}). "
              "Cold: empty model cache (trains the targets and the judge); warm: the same cache again. Stage columns are sums "
              "over the runs; runs in parallel overlap, so a stage sum can exceed the wall time, and the last column "
              "(wall time not in any stage) is then n/a.", ""]
    body = []
    for name, runs in (("cold", cold), ("warm", warm)) + ((("warm, a busy process beside it", shared),) if shared else ()):
        body.append([name, peers.cells([r["wall"] for r in runs]), peers.cells([r["cpu"] for r in runs]), peers.cells([r["maxrss_mb"] for r in runs])]
                    + [peers.cells([r["stages"].get(s, 0.0) for r in runs]) for s in STAGES]
                    + [peers.cells([r["wall"] - sum(r["stages"].values()) for r in runs])
                       if all(r["wall"] >= sum(r["stages"].values()) for r in runs) else "n/a (runs in parallel)"])
    lines.append(table(["demo", "wall s", "CPU s", "peak RSS MB", *(f"{s} s" for s in STAGES), "other s (start-up, images, report)"], body))
    lines += ["", "Attack seconds per run (median over repetitions) and quality (PSNR dB, judge top-1) of the cold runs:", ""]
    names = list(cold[0]["attacks"])
    lines.append(table(["run", "cold attack s", "warm attack s", "PSNR", "top-1"],
                       [[n, median([r["attacks"][n] for r in cold]), median([r["attacks"][n] for r in warm]), *cold[0]["quality"][n]] for n in names]))
    if shared:
        ratios = [s["wall"] / w["wall"] for s, w in zip(shared, warm)]
        lines += ["", f"Beside a busy process: {peers.cells(ratios)} x the warm demo alone (target: at most 2.5x).", ""]
    lines.append("")


# ---------------------------------------------------------------------------------------------- floors


def step_and_floor(run: Callable[[int], object], loss: Callable[[], torch.Tensor], short: int, long: int, reps: int, trials: int, inner: int = 20) -> dict:
    """Seconds per step of a loop (from its runs of `short` and `long` steps, so set-up cancels) and of its
    floor, one forward+backward `loss().backward()`. In each of `reps` repetitions the three are timed in turn,
    `trials` times, and each keeps its best: the step and its floor see the same machine load. Returns the medians
    over the repetitions and each repetition's step/floor ratio."""

    def floor() -> None:
        for _ in range(inner):
            loss().backward()

    run(short), floor()  # warm-up
    steps, floors = [], []
    for _ in range(reps):
        times: dict[str, list[float]] = {"long": [], "short": [], "floor": []}
        for _ in range(trials):
            for key, fn in (("long", lambda: run(long)), ("short", lambda: run(short)), ("floor", floor)):
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
        steps.append((min(times["long"]) - min(times["short"])) / (long - short))
        floors.append(min(times["floor"]) / inner)
    ratios = [a / b for a, b in zip(steps, floors)]
    return {"step": median(steps), "floor": median(floors), "ratio": median(ratios), "ratios": ratios}


def floor_row(name: str, batch: int, m: dict, target: float | None) -> list:
    return [name, batch, m["step"] * 1e3, m["floor"] * 1e3, peers.cells(m["ratios"]), target]


def conv_gradient_rows(reps: int, trials: int) -> list[list]:
    """The input gradient of single-channel convolutions: torch's kernel (a plain `nn.Conv2d`) against
    modelinv's `Conv2d` path (models/conv.py), for the first convolutions of the zoo's grayscale models."""
    rows = []
    for name, geometry, size in (("LeNet conv1, 1->8 5x5", (1, 8, 5), 28), ("cnn-split conv1, 1->32 3x3", (1, 32, 3), 28),
                                 ("DCGAN critic conv1, 1->16 4x4 stride 2", (1, 16, 4, 2, 1), 28)):
        torch.manual_seed(0)
        plain = torch.nn.Conv2d(*geometry).requires_grad_(False)
        ours = Conv2d(*geometry).requires_grad_(False)
        ours.load_state_dict(plain.state_dict())
        x = torch.rand(32, 1, size, size, requires_grad=True)
        times: dict[str, list[float]] = {"torch": [], "modelinv": []}
        for _ in range(reps):
            best = {"torch": math.inf, "modelinv": math.inf}
            for _ in range(trials):
                for key, conv in (("torch", plain), ("modelinv", ours)):
                    start = time.perf_counter()
                    for _ in range(20):
                        conv(x).sum().backward()
                    best[key] = min(best[key], (time.perf_counter() - start) / 20)
            for key in times:
                times[key].append(best[key])
        rows.append([name, 32, median(times["torch"]) * 1e3, median(times["modelinv"]) * 1e3,
                     peers.cells([a / b for a, b in zip(times["torch"], times["modelinv"])])])
    return rows


def floors_part(args, lines: list[str]) -> None:
    torch.set_num_threads(args.threads)
    reps = 1 if args.quick else args.reps
    trials = 1 if args.quick else args.trials
    scale = 0.25 if args.quick else 1.0
    gen = torch.Generator().manual_seed(0)
    lenet = build_model("lenet", (1, 28, 28), 10).eval().requires_grad_(False)
    x64 = torch.rand(64, 1, 28, 28, generator=gen)
    body = []

    for layer in ("conv1", "relu2"):
        observed = lenet.features(x64, layer).detach()
        f1 = lambda x, layer=layer: lenet.features(x, layer)  # noqa: E731
        steps = schedule(lenet, layer, RMLEParams())  # the paper's schedule at this cut (TV only at the deep cut)
        x = x64.clone().requires_grad_()
        m = step_and_floor(lambda n, f1=f1, observed=observed, steps=steps: invert_features(f1, observed, (1, 28, 28), steps["lr"], n, steps["tv_weight"]),
                           lambda f1=f1, x=x, observed=observed: (f1(x) - observed).pow(2).mean(), int(50 * scale), int(250 * scale), reps, trials)
        body.append(floor_row(f"rMLE step, LeNet {layer} (lr {steps['lr']:g}, TV weight {steps['tv_weight']:g})", 64, m, 1.3))

    classes = torch.arange(10).repeat_interleave(2)
    threat = ThreatModel(white_box=WhiteBox(lenet))
    mi_face = lambda n: ATTACKS.get("mi-face")(iterations=n, window=n + 1)(threat, Targets(classes=classes), None, seed=0)  # noqa: E731
    x = torch.rand(len(classes), 1, 28, 28, generator=gen, requires_grad=True)
    m = step_and_floor(mi_face, lambda: F.cross_entropy(lenet(x), classes), int(50 * scale), int(250 * scale), reps, trials)
    body.append(floor_row("MI-Face step, LeNet (20 images)", len(classes), m, 1.3))

    g = build_model("dcgan-generator", (1, 28, 28), 0, latent_dim=100, width=16).eval().requires_grad_(False)
    d = build_model("dcgan-discriminator", (1, 28, 28), 0, outputs=1, width=16).eval().requires_grad_(False)
    z0, y = torch.randn(64, 100, generator=gen), torch.arange(64) % 10
    z = z0.clone().requires_grad_()

    def gmi_loss() -> torch.Tensor:
        images = g(z)
        return -d(images).mean() + F.cross_entropy(lenet(images), y)

    m = step_and_floor(lambda n: GMI(iterations=n).descend(g, d, lenet, None, z0, y, lambda **_: None), gmi_loss, int(10 * scale) or 2, int(50 * scale), reps, trials)
    body.append(floor_row("GMI latent step (generator, critic, LeNet)", 64, m, None))

    data = torch.rand(1024, 1, 28, 28, generator=gen)

    def from_data(n: int) -> object:
        """The attack with `n` epochs, in an empty model cache of its own (a trained decoder is cached: a second
        call would load it instead of training)."""
        with tempfile.TemporaryDirectory() as cache:
            old = os.environ.get("MODELINV_CACHE")
            os.environ["MODELINV_CACHE"] = cache
            try:
                return ATTACKS.get("inverse-net")(epochs=n)(
                    ThreatModel(observer=Features(lenet, "relu2")), Targets(observations=lenet.features(x64, "relu2")), _images(data), seed=0)
            finally:
                if old is None:
                    os.environ.pop("MODELINV_CACHE", None)
                else:
                    os.environ["MODELINV_CACHE"] = old

    epochs_short, epochs_long = 1, (2 if args.quick else 4)
    steps_per_epoch = math.ceil(len(data) / 64)
    obs = lenet.features(data[:64], "relu2")
    decoder = make_decoder(tuple(obs.shape[1:]), (1, 28, 28), 64, 1024).train()
    m = step_and_floor(lambda n: from_data(epochs_short + (n - 1) // steps_per_epoch), lambda: F.mse_loss(decoder(obs), data[:64]),
                       1, 1 + (epochs_long - epochs_short) * steps_per_epoch, reps, trials)
    body.append(floor_row("inverse-net training step, LeNet relu2 (Adam)", 64, m, 1.5))

    lines += ["## Attack steps against the forward+backward floor", "",
              f"torch threads {torch.get_num_threads()}; {reps} repetition(s); in each, the loop's two runs and its floor are timed in turn, "
              f"{trials} times, and each keeps its best (noise on a shared machine only adds time); the columns are medians over "
              "the repetitions and the ratio is listed per repetition. A step's time is the difference of two runs of the attack's own "
              "loop with different step counts (so set-up cancels); the floor is one forward and backward pass of the same model(s) on "
              "the same batch. The loss, prior, optimiser update, clipping and progress reporting are what a step adds to its floor. "
              "rMLE runs each cut's own schedule (He et al.: lr 1e-2 without TV at the shallow cut, 1e-3 with TV at the deep one).", ""]
    lines.append(table(["loop", "batch", "ms per step", "floor ms", "step / floor", "target ratio"], body))
    lines += ["", "The input gradient of a single-channel convolution (forward + backward to the input, frozen weights), "
              "which dominates the floors above: torch's CPU kernel (a plain `nn.Conv2d`, oneDNN) against the path of "
              "`modelinv.models.conv.Conv2d` that the zoo's models use (the fold of W^T dY; same gradient up to rounding). "
              "Same repetitions and best-of as above.", ""]
    lines.append(table(["convolution", "batch", "torch ms", "modelinv ms", "speed-up"], conv_gradient_rows(reps, trials)))
    lines.append("")


def _images(x: torch.Tensor) -> ImageDataset:
    """Unlabelled images as the attacker's data."""
    return ImageDataset(x=x, y=torch.zeros(len(x), dtype=torch.long), classes=tuple("0123456789"), name="noise")


# ---------------------------------------------------------------------------------------------- peers


def art_part(args, lines: list[str]) -> None:
    """The comparisons with ART (benchmarks/peers.py): MI-Face and attribute inference on the same models."""
    reps = 1 if args.quick else args.reps
    lines += peers.mi_face_section(args.threads, args.quick, reps)
    lines += peers.attribute_section(args.threads, args.quick, [0] if args.quick else [0, 1, 2])


def main() -> None:
    p = Parser(HERE / "results" / "speed.md", description=__doc__)
    p.add_argument("--out", type=Path, default=None, help="the Markdown written (default results/speed.md; results/quick/speed.md with --quick)")
    p.add_argument("--parts", nargs="+", choices=["demo", "shared", "floors", "art"], default=["demo", "shared", "floors", "art"])
    p.add_argument("--reps", type=int, default=3, help="repetitions (medians are reported; 1 with --quick)")
    p.add_argument("--trials", type=int, default=5, help="timed calls per repetition of a floor measurement, the best kept (1 with --quick)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the floors and the ART comparison (default 1)")
    p.add_argument("--demo-threads", type=int, default=None, help="--threads given to the demo (default: the demo's own default)")
    p.add_argument("--quick", action="store_true", help="one repetition, fewer steps")
    p.add_argument("--work", type=Path, default=None, help="where the demo's caches and outputs go (default: a temporary directory)")
    args = p.parse_args()
    before, start = load(), time.perf_counter()
    lines = ["# Speed", "", __doc__.split("\n\n", 2)[2].strip(), ""]
    body: list[str] = []
    with tempfile.TemporaryDirectory(prefix="modelinv-speed-") as tmp:
        work = args.work or Path(tmp)
        if "demo" in args.parts or "shared" in args.parts:
            demo_part(args, work, body)
        if "floors" in args.parts:
            floors_part(args, body)
        if "art" in args.parts:
            art_part(args, body)
    lines += [produced_by(start, before), ""]
    args.out.write_text("\n".join(lines + body))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
