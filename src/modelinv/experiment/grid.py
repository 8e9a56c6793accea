"""A sweep as plain data: the product of datasets x targets x defenses x attacks x seeds, each point an experiment.

Every point has a `run_id`, the SHA-256 of its validated config: the same grid always names the same
runs, so a results store can tell what is already done and a rerun only computes the rest."""

from __future__ import annotations

import hashlib
import itertools
import json

from pydantic import Field

from modelinv.devices import run_device_type
from modelinv.experiment.config import AttackConfig, DataConfig, DefenseConfig, ExperimentConfig, ModelConfig, Scenario, Seed


class GridConfig(Scenario):
    """A Scenario (the fields every run shares) plus the lists to take the product of.

    `datasets` and `targets` default to the scenario's single `data` and `target`; a `null` in
    `defenses` is the undefended reference; `seeds` default to the scenario's single `seed`."""

    datasets: list[DataConfig] | None = Field(None, min_length=1, description="default: [data]")
    targets: list[ModelConfig] | None = Field(None, min_length=1, description="default: [target]")
    defenses: list[DefenseConfig | None] = Field(default_factory=lambda: [None], min_length=1)
    attacks: list[AttackConfig] = Field(min_length=1)
    seeds: list[Seed] | None = Field(None, min_length=1, description="default: [seed]")

    def experiments(self) -> list[ExperimentConfig]:
        """Every point of the grid, attacks innermost: runs sharing data, target, defense and seed are adjacent."""
        shared = self.model_dump(exclude={"datasets", "targets", "defenses", "attacks", "seeds", "data", "target", "seed"})
        points = itertools.product(
            self.datasets or [self.data], self.targets or [self.target], self.defenses, self.seeds or [self.seed], self.attacks
        )
        return [
            ExperimentConfig(**shared, data=data, target=target, defense=defense, seed=seed, attack=attack)
            for data, target, defense, seed, attack in points
        ]


def run_id(cfg: ExperimentConfig) -> str:
    """A stable name for one experiment: the first 16 hex digits of the SHA-256 of its canonical JSON.

    The device enters as the type of device the run uses here, and only when it is not the CPU: a run on the
    CPU keeps the id it had before devices existed, whether its config says auto, cpu or nothing; a run on
    a GPU (auto there, or cuda, cuda:1) is a different run, since it computes different bits."""
    data = cfg.model_dump(mode="json")
    data.pop("device", None)
    kind = run_device_type(cfg.device)
    if kind != "cpu":
        data["device"] = kind
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]

