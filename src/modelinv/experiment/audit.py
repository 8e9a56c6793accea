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
protects, every ladder reaches the floor or its end, or `max_rounds` rounds have run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple

from pydantic import Field

from modelinv.attacks import ATTACKS
from modelinv.attacks.goals import goal
from modelinv.defenses import DEFENSES
from modelinv.errors import AccessDenied, ModelinvError
from modelinv.experiment.config import Count, DataConfig, DefenseConfig, ExperimentConfig, ModelConfig, Seed, Strict
from modelinv.experiment.preflight import check_layer, untrained_target
from modelinv.experiment.runner import Setting, build_threat, check_names, load_splits
from modelinv.observation import OBSERVATIONS
from modelinv.results import defense_label
from modelinv.validation import read_mapping

# Output defenses tried by default, per observation, at three strengths each (weakest first).
DEFAULT_DEFENSES: dict[str, list[tuple[str, str, list[Any]]]] = {
    "features": [("laplace-noise", "scale", [0.1, 0.5, 1.0]), ("gaussian-noise", "sigma", [0.1, 0.5, 1.0])],
    "probs": [("round", "decimals", [3, 2, 1]), ("top-k", "k", [3, 2, 1]), ("label-only", "", [None])],
    "logits": [("round", "decimals", [2, 1, 0]), ("label-only", "", [None])],
    "label": [],
}


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
    model: str = Field(description="the user's trained model: safetensors weights of `arch`, or a TorchScript file")
    arch: str = Field(description="a registered architecture, or 'torchscript'")
    data: DataConfig
    access: str = Field(description="what the attacker sees: features[:LAYER], probs, logits or label")
    white_box: Literal["none", "client", "server", "full"] = "none"
    seed: Seed = 0
    attacks: list[str] | None = Field(None, description="default: every attack the access allows")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="attack name -> parameters")
    defenses: list[DefenseConfig] | None = Field(None, description="default: the output defenses for the access, 3 strengths each")
    num_targets: Count = 64
    per_class: Count = 5
    evaluator: ModelConfig | None = Field(None, description="the judge; default: as in experiments")
    target_options: dict[str, Any] = Field(default_factory=dict, description="more fields of the target: trust_code, normalize, expected_acc (ModelConfig)")
    accuracy_floor: float | None = Field(
        None, gt=0, le=1, description="stop strengthening defenses once the target's accuracy falls below this fraction; default: 10 points below the undefended accuracy"
    )
    max_rounds: int = Field(3, ge=0, description="how many times the defense strengths may be extended when none protects (0: only those listed)")

    def experiment(self, attack: str, defense: DefenseConfig | None = None) -> ExperimentConfig:
        observe, _, layer = self.access.partition(":")
        if observe not in OBSERVATIONS:
            raise ModelinvError(f"invalid access '{self.access}': use features[:LAYER], probs, logits or label")
        return ExperimentConfig(
            seed=self.seed,
            data=self.data,
            target={"arch": self.arch, "weights": self.model, **self.target_options},
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


def audit_grid(cfg: AuditConfig) -> list[ExperimentConfig]:
    """The audit as a grid: every applicable attack undefended, then against each output defense.

    The data and the given model are loaded here, before anything is trained, to check the access's layer
    and decide which attacks the access allows; the runner then loads them again per run from the same files
    (cheap), so every run is reproducible from its config. The judge is trained by the first run."""
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

