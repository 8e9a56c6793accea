"""Audit a user's own trained model: every attack its declared access allows, against trivial baselines, and
the output defenses that could be bolted on (their ranking: report.audit).

The audit is a generated grid of ordinary experiments (the user's weights as `target.weights`), run by the
one runner like any grid and stored like a sweep, so each number in the report can be reproduced with
`modelinv run DIR/runs/<run_id>/config.yaml`. Nothing is retrained: the defenses measured are the
output defenses, applied to the given model at inference (`train: false`).

When no defense tried brings the attacks down to the trivial answer, the audit extends the strengths
(`stronger`, driven by `modelinv.api.run_audit`): one step further on each defense's ladder (STRENGTHS)
whose strongest setting still keeps the target's accuracy at or above the floor (`accuracy_floor`, default
FLOOR_DROP below the undefended accuracy), run through the same grid into the same store, until a defense
protects, every ladder reaches the floor or its end, or `max_rounds` rounds have run.

A text model (`arch` one of modelinv.text.TEXT_TARGETS) is audited the same way on text data (`records`, `text:PATH`,
...): the text attacks that fit what it releases (bow-inversion, text-attribute, name-recovery on a sentence
encoder's embeddings; canary-exposure on a language model's logits) and the output defenses that apply to that
release (noise on embeddings scaled to them, TEXT_NOISE; rounding of logits, TEXT_DEFENSES). `model` is then its modelinv checkpoint directory (a `text-encoder` or `char-lm` trained by
modelinv: a text run's `checkpoints.target`), or nothing for the pre-trained `minilm`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple

import torch
from pydantic import Field

from modelinv.attacks import ATTACKS, Attack
from modelinv.attacks.goals import goal
from modelinv.data.bundled import DATASETS
from modelinv.data.files import FILE_SOURCES
from modelinv.data.text import TextDataset
from modelinv.data.types import Splits
from modelinv.defenses import DEFENSES
from modelinv.errors import AccessDenied, ModelinvError
from modelinv.experiment.config import Count, DataConfig, DefenseConfig, ExperimentConfig, ModelConfig, Seed, Strict
from modelinv.experiment.preflight import check_layer, untrained_target
from modelinv.experiment.runner import Setting, build_threat, check_names, load_splits
from modelinv.experiment.text import check_text_config, check_victims, text_data
from modelinv.models.trainer import TrainConfig
from modelinv.observation import OBSERVATIONS
from modelinv.results import defense_label
from modelinv.text import TEXT_TARGETS
from modelinv.text.encoder import EMBEDDING
from modelinv.text.targets import MODULES, TextTarget, build_text_target, load_text_target
from modelinv.validation import read_mapping

# Output defenses tried by default, per observation, at three strengths each (weakest first).
DEFAULT_DEFENSES: dict[str, list[tuple[str, str, list[Any]]]] = {
    "features": [("laplace-noise", "scale", [0.1, 0.5, 1.0]), ("gaussian-noise", "sigma", [0.1, 0.5, 1.0])],
    "probs": [("round", "decimals", [3, 2, 1]), ("top-k", "k", [3, 2, 1]), ("label-only", "", [None])],
    "logits": [("round", "decimals", [2, 1, 0]), ("label-only", "", [None])],
    "label": [],
}


TEXT_NOISE = (0.25, 0.5, 1.0)
"""Noise tried on a text model's sentence embeddings, weakest first, as the noise vector's expected norm relative to
the embeddings' mean norm (1 for the L2-normalised encoders here): Laplace and Gaussian noise per coordinate scaled
by the embedding's dimension (`embedding_noise`), so that one setting means the same for 32 dimensions and 384."""

TEXT_DEFENSES: dict[str, list[tuple[str, str, list[Any]]]] = {"logits": [("round", "decimals", [2, 1, 0])]}
"""Output defenses tried by default on a text model releasing scores: rounding of a language model's next-character
logits (label-only would leave canary exposure nothing to score). Embeddings get noise (TEXT_NOISE); rounding does
not apply to them (the `round` defense perturbs scores only)."""


def _significant(value: float) -> float:
    return float(f"{value:.2g}")


def embedding_noise(embeddings: torch.Tensor, strengths: tuple[float, ...] = TEXT_NOISE) -> list[DefenseConfig]:
    """Laplace and Gaussian noise on sentence embeddings (N, D) at `strengths`: per coordinate, Gaussian sigma =
    k * r / sqrt(D) and Laplace scale b = k * r / sqrt(2 D) (a Laplace coordinate's variance is 2 b^2), r the
    embeddings' mean norm, so the noise's root-mean-square norm is k times r; two significant digits.

    Example: 64-d unit embeddings, strengths (0.5,) -> laplace-noise scale 0.044, gaussian-noise sigma 0.062."""
    dim, norm = embeddings.shape[1], float(embeddings.norm(dim=1).mean())
    laplace = [DefenseConfig(name="laplace-noise", params={"scale": _significant(k * norm / math.sqrt(2 * dim)), "train": False}) for k in strengths]
    gaussian = [DefenseConfig(name="gaussian-noise", params={"sigma": _significant(k * norm / math.sqrt(dim)), "train": False}) for k in strengths]
    return laplace + gaussian


NUM_TARGETS = 64
"""Private inputs attacked by default (a text audit attacks all private test texts when there are fewer)."""


class Ladder(NamedTuple):
    """How a defense is made stronger: its strength parameter and the next value (None: none stronger)."""

    param: str
    step: Callable[[Any], Any]
    increasing: bool


STRENGTHS: dict[str, Ladder] = {
    "laplace-noise": Ladder("scale", lambda v: round(2 * v, 6), True),  # the noise scale doubled
    "gaussian-noise": Ladder("sigma", lambda v: round(2 * v, 6), True),
    "split-dropout": Ladder("p", lambda v: round((1 + v) / 2, 6), True),  # half as many features kept
    "round": Ladder("decimals", lambda v: v - 1 if v > 0 else None, False),  # one decimal fewer, down to 0
    "top-k": Ladder("k", lambda v: v - 1 if v > 1 else None, False),  # one score fewer, down to 1
}
"""The ladders the audit climbs when no defense tried protects (defenses without a strength are not extended)."""

FLOOR_DROP = 0.10
"""The default accuracy floor: 10 points below the undefended target's accuracy."""


class AuditConfig(Strict):
    model: str | None = Field(
        None, description="the user's trained model: safetensors weights of `arch`, an ONNX or a TorchScript file, a text model's checkpoint directory; none for minilm"
    )
    arch: str = Field(description="a registered architecture, 'onnx' or 'torchscript', or a text target (modelinv.text.TEXT_TARGETS)")
    data: DataConfig
    access: str = Field(description="what the attacker sees: features[:LAYER], probs, logits or label")
    white_box: Literal["none", "client", "server", "full"] = "none"
    seed: Seed = 0
    attacks: list[str] | None = Field(None, description="default: every attack the access allows")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="attack name -> parameters")
    defenses: list[DefenseConfig] | None = Field(None, description="default: the output defenses for the access, 3 strengths each")
    num_targets: Count = Field(NUM_TARGETS, description="private inputs attacked; a text audit left at the default attacks at most its private test texts")
    per_class: Count = 5
    evaluator: ModelConfig | None = Field(None, description="the judge; default: as in experiments")
    target_options: dict[str, Any] = Field(default_factory=dict, description="more fields of the target: trust_code, normalize, expected_acc (ModelConfig)")
    accuracy_floor: float | None = Field(
        None, gt=0, le=1, description="stop strengthening defenses once the target's accuracy falls below this fraction; default: 10 points below the undefended accuracy"
    )
    max_rounds: int = Field(3, ge=0, description="how many times the defense strengths may be extended when none protects (0: only those listed)")

    @property
    def text(self) -> bool:
        """Whether the model under audit is a text target (modelinv.text)."""
        return self.arch in TEXT_TARGETS

    def experiment(self, attack: str, defense: DefenseConfig | None = None) -> ExperimentConfig:
        observe, _, layer = self.access.partition(":")
        if observe not in OBSERVATIONS:
            raise ModelinvError(f"invalid access '{self.access}': use features[:LAYER], probs, logits or label")
        if self.model is None and not self.text:
            raise ModelinvError(f"auditing a '{self.arch}' model needs the model: its weights file (--model)")
        weights = {} if self.model is None else {"weights": self.model}
        return ExperimentConfig(
            seed=self.seed,
            data=self.data,
            target={"arch": self.arch, **weights, **self.target_options},
            access={"observe": observe, "layer": layer or None, "white_box": self.white_box},
            attack={"name": attack, "params": self.params.get(attack, {})},
            defense=defense,
            num_targets=self.num_targets,
            per_class=self.per_class,
            evaluator=self.evaluator,
        )

    def output_defenses(self) -> list[DefenseConfig]:
        if self.defenses is not None:
            return self.defenses
        observe = self.access.partition(":")[0]
        grid = []
        for name, param, values in DEFAULT_DEFENSES[observe]:
            for value in values:
                params = {param: value} if param else {}
                grid.append(DefenseConfig(name=name, params={**params, "train": False} if observe == "features" else params))
        return grid


def applicable_attacks(cfg: AuditConfig, setting) -> list[str]:
    """The registered attacks (or the requested ones) that the declared access allows: on a table with a
    sensitive column, the attribute-inference attacks; on any other data, the others."""
    names = cfg.attacks or ATTACKS.names()
    attributes = getattr(setting.splits.private_train, "sensitive", None) is not None
    chosen = []
    for name in names:
        experiment = cfg.experiment(name)
        attack, _ = check_names(experiment)
        threat, _ = build_threat(experiment, setting.target)
        try:
            if goal(attack.goal).text:
                raise AccessDenied(f"attack '{name}' inverts text targets; audit image and tabular models with the others")
            if (attack.goal == "attribute") != attributes:
                needs = "tabular data with a sensitive column (data.tabular)" if attack.goal == "attribute" else "data without a sensitive column"
                raise AccessDenied(f"attack '{name}' needs {needs}")
            threat.require(name, attack.observes, attack.white_box)
        except AccessDenied as err:
            if cfg.attacks:
                raise ModelinvError(str(err)) from None
            continue
        chosen.append(name)
    return chosen


def source_kind(source: str) -> str | None:
    """The kind of a data source ("image", "tabular", "text") as its registry declares it; None when unknown
    (loading it then names the known sources)."""
    prefix, colon, _ = source.partition(":")
    if colon and prefix in FILE_SOURCES:
        return FILE_SOURCES.info(prefix).get("kind")
    return DATASETS.info(source).get("kind") if source in DATASETS else None


def check_text_audit(cfg: AuditConfig) -> None:
    """What an audit of a text model refuses before anything is loaded: non-text data, options of image models
    (normalisation, TorchScript, a judge, white-box access, tabular or csv settings), a layer other than the
    embedding, weights for the pre-trained minilm or none for a model trained here. Whether the access fits the
    target is each attack's check (modelinv.experiment.text.check_text_config)."""
    arch = cfg.arch
    kind = source_kind(cfg.data.source)
    if kind is not None and kind != "text":
        raise ModelinvError(f"text target '{arch}' is audited on text data (records, text:PATH), not the {kind} source '{cfg.data.source}'")
    if arch in MODULES and cfg.model is None:
        raise ModelinvError(f"auditing a '{arch}' needs the model: its modelinv checkpoint directory (--model DIR: model.json and weights.safetensors)")
    if arch not in MODULES and cfg.model is not None:
        raise ModelinvError(f"'{arch}' is pre-trained (its weights come with the text extra): audit it without --model")
    options = {"normalize": "normalize", "expected_acc": "expected accuracy", "trust_code": "trust_code"}
    given = [options.get(k, k) for k, v in cfg.target_options.items() if v not in (None, False)]
    if given:
        raise ModelinvError(f"{given[0]} applies to image and tabular models, not to text target '{arch}'")
    if cfg.evaluator is not None:
        raise ModelinvError(f"text target '{arch}' is judged by its attacks' own metrics: there is no judge to train (evaluator epochs)")
    if cfg.white_box != "none":
        raise ModelinvError(f"text targets are audited through what they release only: white-box '{cfg.white_box}' does not apply to '{arch}'")
    d = cfg.data
    for name, value in (("label_column", d.label_column), ("tabular", d.tabular), ("image_size", d.image_size)):
        if value is not None:
            raise ModelinvError(f"{name} does not apply to text data ('{d.source}'); label a text file with TEXT<TAB>LABEL lines")
    observe, _, layer = cfg.access.partition(":")
    if layer and (observe != "features" or layer != EMBEDDING):
        raise ModelinvError(f"a sentence encoder releases its '{EMBEDDING}' only, not '{cfg.access}': use access features")


EMBEDDING_GOALS = ("bag-of-words", "text-attribute")
"""Text goals whose victims are embedded texts: their attacks need a sentence encoder (a target releasing features)."""


def text_misfit(cfg: AuditConfig, experiment: ExperimentConfig, attack: Attack, splits: Splits) -> str | None:
    """Why the attack of `experiment` does not apply to this text audit, or None: its goal is not a text goal, it
    needs a sentence encoder, the data lacks what it guesses (names, labels), or the runner's own checks refuse its
    access (`check_text_config`, `check_victims`)."""
    name, arch, test = experiment.attack.name, cfg.arch, splits.private_test
    if not goal(attack.goal).text:
        return f"attack '{name}' inverts image or tabular models, not text target '{arch}'"
    if attack.goal in EMBEDDING_GOALS and TEXT_TARGETS.info(arch)["releases"] != "features":
        return f"attack '{name}' attacks embedded texts: text target '{arch}' is no sentence encoder"
    field = getattr(attack.params, "field", None) if attack.goal == "text-attribute" else None
    if field is not None and field not in test.attributes:
        return f"attack '{name}' guesses the {field} of personal records: audit on records data"
    if attack.goal == "text-attribute" and field is None and len(test.classes) < 2:
        return f"attack '{name}' infers the texts' labels: '{cfg.data.source}' has none (give TEXT<TAB>LABEL lines)"
    try:
        check_text_config(experiment, attack)
        check_victims(experiment, attack, splits)
    except ModelinvError as err:
        return str(err)
    return None


def text_defenses(cfg: AuditConfig, target: TextTarget, test: TextDataset) -> list[DefenseConfig]:
    """The output defenses a text audit tries by default, on what the attacker observes: noise scaled to the
    sentence embeddings (`embedding_noise`), rounding of a language model's logits (TEXT_DEFENSES), and for a
    classifier's scores those of an image classifier's (DEFAULT_DEFENSES)."""
    observe = cfg.access.partition(":")[0]
    if observe == "features":
        with torch.no_grad():
            return embedding_noise(target.model.features(target.tokenizer.encode(test.texts[:256]), EMBEDDING))
    table = TEXT_DEFENSES if target.releases == observe else DEFAULT_DEFENSES
    return [DefenseConfig(name=name, params={param: value} if param else {}) for name, param, values in table.get(observe, []) for value in values]


def text_audit_grid(cfg: AuditConfig) -> list[ExperimentConfig]:
    """`audit_grid` of a text model: the data split and the model loaded (a checkpoint verified) up front, then every
    text attack that fits (`text_misfit`), undefended and under each output defense (`text_defenses`, or the
    configured `defenses`). Requested attacks that do not fit, or none fitting, are one-line errors."""
    check_text_audit(cfg)
    splits = text_data(cfg.experiment(ATTACKS.names()[0]))
    test = splits.private_test
    if cfg.model is not None:  # a wrong or corrupt checkpoint, or a missing text extra, fails here in one line
        target = load_text_target(cfg.arch, cfg.model, test)
    else:
        target = build_text_target(cfg.arch, {}, TrainConfig(), splits.private_train, test, cfg.seed)
    if target.releases == "features" and cfg.num_targets > len(test):  # the embedding attacks' victims
        if "num_targets" in cfg.model_fields_set:
            raise ModelinvError(f"num_targets {cfg.num_targets} is more than the {len(test)} private test texts of {cfg.data.source}; set it to at most {len(test)}")
        cfg = cfg.model_copy(update={"num_targets": len(test)})
    chosen, reasons = [], {}
    for name in cfg.attacks or ATTACKS.names():
        experiment = cfg.experiment(name)
        attack, _ = check_names(experiment)
        reason = text_misfit(cfg, experiment, attack, splits)
        if reason is None:
            chosen.append(name)
        elif cfg.attacks:
            raise ModelinvError(reason)
        elif goal(attack.goal).text:
            reasons[name] = reason
    if not chosen:
        raise ModelinvError(f"no text attack applies to '{cfg.arch}' with access '{cfg.access}' on {cfg.data.source}: " + "; ".join(dict.fromkeys(reasons.values())))
    defenses = cfg.defenses if cfg.defenses is not None else text_defenses(cfg, target, test)
    return [cfg.experiment(attack, defense) for defense in [None, *defenses] for attack in chosen]


def audit_grid(cfg: AuditConfig) -> list[ExperimentConfig]:
    """The audit as a grid: every applicable attack undefended, then against each output defense.

    The data and the given model are loaded here, before anything is trained, to check the access's layer
    and decide which attacks the access allows; the runner then loads them again per run from the same files
    (cheap), so every run is reproducible from its config. The judge is trained by the first run. A text model's
    grid is `text_audit_grid`'s."""
    if cfg.text:
        return text_audit_grid(cfg)
    kind = source_kind(cfg.data.source)
    if kind == "text":
        raise ModelinvError(f"'{cfg.data.source}' is text data: audit a text model (--arch {' or '.join(TEXT_TARGETS.names())}), not '{cfg.arch}'")
    first = cfg.experiment(cfg.attacks[0] if cfg.attacks else ATTACKS.names()[0])
    splits = load_splits(first.data, first.seed)
    target = untrained_target(first, splits)
    check_layer(first, splits, target)
    attacks = applicable_attacks(cfg, Setting(splits, target, {}, None, None, {}))
    return [cfg.experiment(attack, defense) for defense in [None, *(cfg.output_defenses() if attacks else [])] for attack in attacks]


def resolve_floor(cfg: AuditConfig, undefended_accuracy: float | None) -> float | None:
    """The accuracy floor of an audit: the configured one, else FLOOR_DROP below the undefended accuracy
    (None when that was not measured)."""
    if cfg.accuracy_floor is not None:
        return cfg.accuracy_floor
    return None if undefended_accuracy is None else max(round(undefended_accuracy - FLOOR_DROP, 6), 0.0)


def _strength(defense: DefenseConfig, ladder: Ladder) -> Any:
    if ladder.param in defense.params:
        return defense.params[ladder.param]
    return DEFENSES.get(defense.name).Params.model_fields[ladder.param].default


def stronger(tried: list[tuple[DefenseConfig, float | None]], floor: float | None) -> tuple[list[DefenseConfig], bool]:
    """The next settings to try: for each defense on a ladder (STRENGTHS; its other parameters fixed), one
    step beyond its strongest setting tried, unless that setting's accuracy (as measured, beside it in
    `tried`) is below `floor` or the ladder ends. Also whether any defense stopped at the floor.

    Example: [(laplace-noise scale 1.0, accuracy 0.93)] with floor 0.85 -> [laplace-noise scale 2.0], False."""
    families: dict[tuple[str, str], tuple[DefenseConfig, Any, float | None]] = {}
    seen = {defense_label({"defense": d.name, "defense_params": d.params}) for d, _ in tried}
    for defense, accuracy in tried:
        ladder = STRENGTHS.get(defense.name)
        if ladder is None:
            continue
        value = _strength(defense, ladder)
        key = (defense.name, defense_label({"defense": "", "defense_params": {k: v for k, v in defense.params.items() if k != ladder.param}}))
        best = families.get(key)
        if best is None or (value > best[1] if ladder.increasing else value < best[1]):
            families[key] = (defense, value, accuracy)
    new, at_floor = [], False
    for defense, value, accuracy in families.values():
        if floor is not None and accuracy is None:  # not measured: the floor cannot be checked
            continue
        if floor is not None and accuracy < floor:
            at_floor = True
            continue
        ladder = STRENGTHS[defense.name]
        nxt = ladder.step(value)
        if nxt is None:
            continue
        candidate = DefenseConfig(name=defense.name, params={**defense.params, ladder.param: nxt})
        if defense_label({"defense": candidate.name, "defense_params": candidate.params}) not in seen:
            new.append(candidate)
    return new, at_floor


def load_params(path: Path | None) -> dict[str, dict[str, Any]]:
    """Attack parameters from a YAML or JSON file mapping attack name to parameters."""
    if path is None:
        return {}
    raw = read_mapping(path, "parameter file")
    if not all(isinstance(k, str) and isinstance(v, dict) for k, v in raw.items()):
        raise ModelinvError(f"parameter file {path} must map attack names to parameter mappings")
    return raw

