"""modelinv beside a peer toolbox, the Adversarial Robustness Toolbox (ART), on the same trained models, in one process.

    pip install --constraint constraints.txt -e ".[peers]"     # adversarial-robustness-toolbox: benchmark-only
    python benchmarks/peers.py                  # both comparisons, 3 repetitions, into benchmarks/results/peers.md
    python benchmarks/peers.py --quick          # one repetition, smaller budgets: checks that it runs

- MI-Face (Fredrikson et al., CCS 2015): ART's `MIFace` (at batch size 10, and at its defaults: 10,000 steps,
  batch size 1) and modelinv's `mi-face` on the same MLP target (mnist5k, private digits 0-4, 2 inversions per
  class), run alternately at equal step budgets and scored by the same evaluation classifier (knn_ratio, judge
  top-1). Times are compared as ratios measured in the same repetition; each repetition uses another seed for
  modelinv's random start (ART starts from zeros: its images do not change with the seed).
- Attribute inference (Fredrikson et al., USENIX Security 2014): ART's `AttributeInferenceBlackBox` (an attack
  model from the victim's other columns and the target's predicted label to the sensitive value, trained on the
  attacker's public records through the target) and ART's `AttributeInferenceBaseline` (the same without the
  target) against modelinv's `fredrikson-attr` (black-box, the released probabilities as evidence), on the same
  target, victims and public records as `benchmarks/tabular.py`, seeds 0-2 (mean and 95% t interval).

`benchmarks/speed.py` includes both sections in speed.md; this script writes them alone.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from modelinv.attacks import ATTACKS
from modelinv.data.schema import sensitive_of
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.runner import attack_targets, attacker_dataset, build_threat, prepare
from modelinv.experiment.sweep import load
from modelinv.metrics import MetricInputs, compute
from modelinv.report.aggregate import fmt, interval
from modelinv.report.benchmark import Parser, produced_by
from modelinv.report.markdown import table
from modelinv.validation import validate

HERE = Path(__file__).resolve().parent
INSTALL = '`pip install --constraint constraints.txt -e ".[peers]"`'


def installed() -> bool:
    try:
        import art  # noqa: F401
    except ImportError:
        return False
    return True


def cells(values: list[float]) -> str:
    """'median (each value)'."""
    return f"{fmt(statistics.median(values))} ({', '.join(fmt(v) for v in values)})"


def mean_interval(values: list[float], bounds: tuple[float, float] = (0.0, 1.0)) -> str:
    """'mean [95% t interval]' of accuracies over seeds, clipped to their range (`bounds`)."""
    i = interval(values, bounds=bounds)
    return i.text() if i is not None else "-"


# ---------------------------------------------------------------------------------------------- MI-Face


def mi_face_section(threads: int, quick: bool, reps: int) -> list[str]:
    """ART's MIFace against modelinv's mi-face at equal step budgets and at each one's defaults."""
    title = "## modelinv MI-Face beside ART's MIFace"
    if not installed():
        return [title, "", f"Not run: adversarial-robustness-toolbox is not installed ({INSTALL}).", ""]
    from art.attacks.inference.model_inversion import MIFace
    from art.estimators.classification import PyTorchClassifier

    torch.set_num_threads(threads)
    cfg = validate(ExperimentConfig, {
        "seed": 0, "data": {"source": "mnist5k", "split": "class-disjoint"}, "target": {"arch": "mlp"},
        "access": {"observe": None, "white_box": "full"}, "attack": {"name": "mi-face"}, "per_class": 2,
        "metrics": ["knn_ratio", "attack_acc_top1"],
    })
    setting = prepare(cfg)
    threat, _ = build_threat(cfg, setting.target)
    targets, labels, _ = attack_targets(cfg, ATTACKS.get("mi-face")(), threat, setting.splits)
    model = setting.target.eval()

    def score(images: torch.Tensor) -> dict:
        inputs = MetricInputs(reconstructions=images, labels=labels, truth=None, evaluator=setting.evaluator,
                              private=setting.splits.private_train, holdout=setting.splits.private_test, public=setting.splits.public)
        return compute(["knn_ratio", "attack_acc_top1"], inputs)

    classifier = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28),
                                   nb_classes=int(model.spec["num_classes"]), clip_values=(0.0, 1.0))

    def ours(steps: int | None, seed: int) -> tuple[float, dict]:
        params = {} if steps is None else {"iterations": steps}
        start = time.perf_counter()
        images = ATTACKS.get("mi-face")(**params)(threat, targets, None, seed=seed).images
        return time.perf_counter() - start, score(images)

    def theirs(steps: int | None) -> tuple[float, dict]:
        params = {} if steps is None else {"max_iter": steps, "batch_size": 10}
        start = time.perf_counter()
        images = MIFace(classifier, verbose=False, **params).infer(None, labels.numpy())
        return time.perf_counter() - start, score(torch.as_tensor(images, dtype=torch.float32))

    def row(label: object, pairs: list) -> list:
        """A table row from (modelinv, ART) pairs of (seconds, scores): the time ratio per pair, mean quality."""
        mean = lambda side, metric: fmt(statistics.mean(pair[side][1][metric] for pair in pairs))  # noqa: E731
        return [label, cells([b[0] / a[0] for a, b in pairs]), mean(0, "knn_ratio"), mean(1, "knn_ratio"), mean(0, "attack_acc_top1"), mean(1, "attack_acc_top1")]

    budgets = [150, 1000] if quick else [150, 1000, 5000]
    body, seconds = [], {}
    for steps in budgets:
        runs = [(ours(steps, seed), theirs(steps)) for seed in range(reps)]  # alternating, one pair per repetition
        seconds[steps] = [(a[0], b[0]) for a, b in runs]
        body.append(row(steps, runs))
    defaults = []
    for seed in range(1 if quick else reps):
        a = ours(None, seed)
        b = theirs(None)
        defaults.append((a, b))
    default_steps = ATTACKS.get("mi-face").Params().iterations
    body.append(row(f"defaults: modelinv {default_steps}, ART 10000 at batch size 1", defaults))
    # per step: the difference between the largest and the smallest budget in the same repetition (set-up cancels)
    few, many = budgets[0], budgets[-1]
    per_step = [((b1 - b0) / (many - few), (a1 - a0) / (many - few)) for (a0, b0), (a1, b1) in zip(seconds[few], seconds[many])]
    lines = [title, "",
             f"MLP target on mnist5k (private digits 0-4), {len(labels)} inversions (2 per class), torch threads {torch.get_num_threads()}, "
             f"{reps} repetition(s) at equal budgets and {len(defaults)} at the defaults, modelinv and ART alternating in this process. "
             "The time column is ART's seconds divided by modelinv's in the same repetition (above 1: modelinv is faster), set-up "
             "included: median (each repetition). knn_ratio: judge-feature distance to the nearest private "
             "image of the class relative to real held-out images (lower is better; held-out real images score about 1); top-1: the "
             "judge's accuracy on the inversions (chance 0.2). Quality columns are means over the repetitions (modelinv's seeds differ; "
             f"ART starts from zeros). At the defaults, modelinv is {cells([b[0] / a[0] for a, b in defaults])}x faster. Per step "
             f"(the time of the {many}-step run minus that of the {few}-step run, over the {many - few} steps between them, so "
             f"set-up cancels): ART {fmt(1e3 * statistics.median(b for b, _ in per_step))} ms, modelinv "
             f"{fmt(1e3 * statistics.median(a for _, a in per_step))} ms, modelinv {cells([b / a for b, a in per_step])}x faster.", ""]
    lines.append(table(["steps", "ART s / modelinv s", "knn_ratio modelinv", "knn_ratio ART", "top-1 modelinv", "top-1 ART"], body))
    lines.append("")
    return lines


# ---------------------------------------------------------------------------------------------- attribute inference


DATASETS = {
    "planted:2": {"source": "planted:2"},
    "breast-cancer": {"source": "breast-cancer", "tabular": {"sensitive": "mean radius", "bins": [6, 12, 15, 30]}},
}
TARGETS = ("tabular-mlp", "sk-tree")


def attribute_config(data: dict, target: str, seed: int, quick: bool) -> ExperimentConfig:
    """The setting of benchmarks/tabular.py: probabilities observed, up to 1,000 private training records attacked."""
    return validate(ExperimentConfig, {
        "seed": seed, "data": data, "target": {"arch": target, "train": {"epochs": 5 if quick else 40}},
        "access": {"observe": "probs"}, "attack": {"name": "fredrikson-attr"},
        "num_targets": 318 if data["source"] == "breast-cancer" else (200 if quick else 1000),
    })


def attribute_run(cfg: ExperimentConfig) -> dict[str, tuple[float, float]]:
    """(accuracy, seconds) of modelinv's fredrikson-attr, ART's black-box attack and ART's baseline on one setting,
    with the most-common-value baseline's accuracy."""
    from art.attacks.inference.attribute_inference import AttributeInferenceBaseline, AttributeInferenceBlackBox
    from art.estimators.classification import BlackBoxClassifier

    setting = prepare(cfg)
    threat, _ = build_threat(cfg, setting.target)
    attack = ATTACKS.get("fredrikson-attr")()
    targets, labels, truth = attack_targets(cfg, attack, threat, setting.splits)
    public = attacker_dataset(cfg, setting.splits)
    sensitive = sensitive_of(public)

    def accuracy(guessed: torch.Tensor) -> float:
        inputs = MetricInputs(reconstructions=guessed, labels=labels, truth=truth, evaluator=None,
                              private=setting.splits.private_train, holdout=setting.splits.private_test, public=public)
        return compute(["attr_acc"], inputs)["attr_acc"]

    def with_guess(column: np.ndarray) -> torch.Tensor:
        guessed = truth.clone()
        guessed[:, sensitive.index] = torch.as_tensor(column, dtype=guessed.dtype).flatten()
        return guessed

    out: dict[str, tuple[float, float]] = {}
    start = time.perf_counter()
    reconstruction = attack(threat, targets, public, seed=cfg.seed)
    out["modelinv fredrikson-attr"] = (accuracy(reconstruction.images), time.perf_counter() - start)

    model = setting.target.eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.as_tensor(x, dtype=torch.float32)).softmax(1).numpy()

    x_public = public.x.numpy().astype(np.float32)
    others = np.delete(truth.numpy().astype(np.float32), sensitive.index, axis=1)
    continuous = sensitive.edges is not None  # a binned numeric column: ART regresses the value, which is then binned
    values = None if continuous else [float(v) for v in range(sensitive.num_values)]
    np.random.seed(cfg.seed)  # ART's attack models draw from numpy's and torch's global generators
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    estimator = BlackBoxClassifier(predict, input_shape=(x_public.shape[1],), nb_classes=public.num_classes)
    art = AttributeInferenceBlackBox(estimator, attack_feature=sensitive.index, is_continuous=continuous)
    art.fit(x_public)
    # the victims' released probabilities, as modelinv's attack saw them; ART's attack on a classifier uses its label (as in fit)
    released = threat.observer.intercept(truth).argmax(1).numpy().reshape(-1, 1).astype(np.float32)
    guess = art.infer(others, pred=released, **({} if continuous else {"values": values}))
    out["ART AttributeInferenceBlackBox"] = (accuracy(with_guess(guess)), time.perf_counter() - start)
    start = time.perf_counter()
    baseline = AttributeInferenceBaseline(attack_feature=sensitive.index, is_continuous=continuous)
    baseline.fit(x_public)
    guess = baseline.infer(others, **({} if continuous else {"values": values}))
    out["ART AttributeInferenceBaseline (no target)"] = (accuracy(with_guess(guess)), time.perf_counter() - start)
    common = torch.bincount(sensitive.values(public.x), minlength=sensitive.num_values).argmax()
    most_common = with_guess(np.full(len(truth), float(sensitive.candidates(public.x)[common])))
    out["most common public value"] = (accuracy(most_common), 0.0)
    return out


def attribute_section(threads: int, quick: bool, seeds: list[int]) -> list[str]:
    title = "## modelinv fredrikson-attr beside ART's attribute inference"
    if not installed():
        return [title, "", f"Not run: adversarial-robustness-toolbox is not installed ({INSTALL}).", ""]
    torch.set_num_threads(threads)
    body = []
    for name, data in DATASETS.items():
        for target in TARGETS:
            runs = [attribute_run(attribute_config(data, target, seed, quick)) for seed in seeds]
            ours = [r["modelinv fredrikson-attr"][1] for r in runs]
            for attack in runs[0]:
                acc = [r[attack][0] for r in runs]
                seconds = [r[attack][1] for r in runs]
                ratio = cells([s / o for s, o in zip(seconds, ours)]) if attack.startswith("ART") else "-"
                body.append([name, target, attack, mean_interval(acc), ratio])
    lines = [title, "",
             f"The setting of `benchmarks/tabular.py` (probabilities observed; the attacker holds the public split with the sensitive "
             f"column; the victims are private training records), seeds {seeds}, torch threads {torch.get_num_threads()}. Accuracy of "
             "the guessed sensitive value (level, or bin of a numeric column): mean [95% t interval over seeds]. ART's black-box "
             "attack trains its attack model (ART's default neural network) on the public records' other columns and the target's "
             "predicted label (what ART uses of a classifier's output); on a binned numeric "
             "column it regresses the value, which is then binned. Time: the attack's seconds divided by modelinv's on the same seed "
             "(median (each seed)), training of ART's attack model included. ART's baseline needs no target: it predicts the sensitive "
             "value from the other columns, which Fredrikson et al.'s attack does not use (it combines the prior with the target's "
             "output); where the columns are correlated (breast-cancer's mean radius with its mean perimeter and area) the baseline "
             "beats an attack that reads nothing from the target, which is why `tabular.md` reports the same reference as "
             "attr_ideal_acc.", ""]
    lines.append(table(["data", "target", "attack", "accuracy", "seconds / modelinv's"], body))
    lines.append("")
    return lines


def main() -> None:
    p = Parser(HERE / "results" / "peers.md", description=__doc__)
    p.add_argument("--out", type=Path, default=None, help="the Markdown written (default results/peers.md; results/quick/peers.md with --quick)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of the MI-Face comparison (1 with --quick)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--quick", action="store_true", help="one repetition or seed, smaller budgets")
    args = p.parse_args()
    before, start = load(), time.perf_counter()
    body = mi_face_section(args.threads, args.quick, 1 if args.quick else args.reps)
    body += attribute_section(args.threads, args.quick, [0] if args.quick else [0, 1, 2])
    lines = ["# modelinv beside ART", "", __doc__.split("\n\n", 2)[2].strip(), "", produced_by(start, before), ""]
    args.out.write_text("\n".join(lines + body))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
