"""Detectors of inversion-like traffic, run over the query log: each reads one key's queries and returns
the evidence when its rule fires. Thresholds are named parameters; the defaults suit a model answering
people (a few hundred queries a minute) and are meant to be tuned per deployment.

- `volume`: sustained volume; an inverse network needs thousands of (query, answer) pairs (He et al. 2019).
- `perturbation`: many inputs that are small perturbations of earlier ones: black-box gradient
  estimation and iterative refinement query x + delta around one point.
- `ood`: mostly out-of-distribution inputs (modelinv.serve.ood), e.g. noise used to train an inverse network.
- `class-sweep`: long runs of one predicted class, class after class: an attacker working through the
  classes one at a time, as class-representative attacks do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from modelinv.registry import Registry
from modelinv.serve.db import connect
from modelinv.validation import validate

DETECTORS: Registry = Registry("detector")


@dataclass(frozen=True)
class Traffic:
    """One key's logged queries in time order, as arrays."""

    time: np.ndarray
    nearest: np.ndarray
    ood: np.ndarray
    """Out-of-distribution scores (modelinv.serve.ood): above 1 is out of distribution; -inf when unscored."""
    label: np.ndarray


class DetectorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Detector:
    """Base class: `check(traffic)` returns one line of evidence when the rule fires, else None."""

    name: ClassVar[str]
    Params: ClassVar[type[DetectorParams]] = DetectorParams

    def __init__(self, **params: Any):
        self.params = validate(self.Params, params, where=f"monitor.{getattr(self, 'name', 'detector')}")

    def check(self, traffic: Traffic) -> str | None:
        raise NotImplementedError


class VolumeParams(DetectorParams):
    max_queries: int = Field(1000, ge=1, description="most inputs allowed within any window")
    window_s: float = Field(60.0, gt=0, description="length of the sliding window in seconds")


@DETECTORS.register("volume")
class Volume(Detector):
    """More than `max_queries` inputs within some `window_s` seconds."""

    Params = VolumeParams

    def check(self, traffic: Traffic) -> str | None:
        t, p = traffic.time, self.params
        if len(t) <= p.max_queries:
            return None
        counts = np.searchsorted(t, t + p.window_s, side="right") - np.arange(len(t))
        peak = int(counts.max())
        return f"{peak} queries within {p.window_s:g} s (limit {p.max_queries})" if peak > p.max_queries else None


class ShareDetector(Detector):
    """Flags a key when at least `min_count` of its queries, and `min_fraction` of all, match `matches`."""

    def matches(self, traffic: Traffic) -> np.ndarray:
        raise NotImplementedError

    def evidence(self, traffic: Traffic) -> str:
        raise NotImplementedError

    def check(self, traffic: Traffic) -> str | None:
        hits, p = int(np.sum(self.matches(traffic))), self.params
        if hits >= p.min_count and hits >= p.min_fraction * len(traffic.time):
            return f"{hits} of {len(traffic.time)} queries {self.evidence(traffic)}"
        return None


class PerturbationParams(DetectorParams):
    max_distance: float = Field(0.02, gt=0, description="RMS distance to an earlier input below which a query is a small perturbation")
    min_count: int = Field(20, ge=1, description="perturbation queries needed to flag")
    min_fraction: float = Field(0.2, gt=0, le=1, description="share of the key's queries that must be perturbations")


@DETECTORS.register("perturbation")
class Perturbation(ShareDetector):
    """At least `min_count` queries, and `min_fraction` of all, within `max_distance` of an earlier input."""

    Params = PerturbationParams

    def matches(self, traffic: Traffic) -> np.ndarray:
        return traffic.nearest <= self.params.max_distance

    def evidence(self, traffic: Traffic) -> str:
        return f"are perturbations (RMS distance <= {self.params.max_distance:g}) of earlier ones"


class OodParams(DetectorParams):
    min_count: int = Field(20, ge=1, description="out-of-distribution queries needed to flag")
    min_fraction: float = Field(0.5, gt=0, le=1, description="share of the key's queries that must be out of distribution")


@DETECTORS.register("ood")
class OutOfDistribution(ShareDetector):
    """At least `min_count` queries, and `min_fraction` of all, score above 1: beyond the reference data's quantile."""

    Params = OodParams

    def matches(self, traffic: Traffic) -> np.ndarray:
        return traffic.ood > 1.0

    def evidence(self, traffic: Traffic) -> str:
        return f"are out of distribution (median score {np.median(traffic.ood):.2g}; reference data < 1)"


class SweepParams(DetectorParams):
    min_repeat: float = Field(0.6, gt=0, le=1, description="share of consecutive queries predicted as the same class that flags")
    min_run: int = Field(10, ge=2, description="length of a run of one predicted class that counts a class as swept")
    min_classes: int = Field(3, ge=2, description="classes with such a run needed to flag")
    min_count: int = Field(50, ge=2, description="queries needed before the rule applies")


@DETECTORS.register("class-sweep")
class ClassSweep(Detector):
    """At least `min_repeat` of consecutive queries share their predicted class, and >= `min_classes`
    classes each get a run of >= `min_run`: class after class. Benign traffic in random order repeats
    about sum_c p_c^2 (0.1 for ten balanced classes); traffic that is all one class has one run."""

    Params = SweepParams

    def check(self, traffic: Traffic) -> str | None:
        labels, p = traffic.label, self.params
        if len(labels) < p.min_count:
            return None
        starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
        lengths = np.diff(np.r_[starts, len(labels)])
        swept = len(np.unique(labels[starts[lengths >= p.min_run]]))
        repeat = float(np.mean(labels[1:] == labels[:-1]))
        if repeat >= p.min_repeat and swept >= p.min_classes:
            return f"{100 * repeat:.0f}% of consecutive queries repeat the predicted class; {swept} classes in runs of >= {p.min_run} (limit {100 * p.min_repeat:.0f}%, {p.min_classes} classes)"
        return None


@dataclass(frozen=True)
class Alert:
    key_id: str
    key_name: str
    queries: int
    evidence: dict[str, str]


def build_detectors(params: dict[str, dict[str, Any]] | None = None) -> list[Detector]:
    """Every registered detector, with `params[name]` overriding its thresholds."""
    params = params or {}
    for name in params:
        DETECTORS.get(name)
    return [DETECTORS.get(name)(**params.get(name, {})) for name in DETECTORS.names()]


def scan(path: Path, detectors: list[Detector] | None = None) -> list[Alert]:
    """Flagged keys of the serving database at `path`, with each rule's evidence."""
    db = connect(path, create=False)
    try:
        detectors = detectors if detectors is not None else build_detectors()
        names = dict(db.execute("SELECT id, name FROM keys"))
        alerts = []
        for (key_id,) in db.execute("SELECT DISTINCT key_id FROM queries ORDER BY key_id").fetchall():
            rows = db.execute("SELECT time, nearest, ood, label FROM queries WHERE key_id = ? ORDER BY time, rowid", (key_id,)).fetchall()
            t, near, ood, label = (np.array(c, dtype=float) for c in zip(*rows))
            traffic = Traffic(t, np.nan_to_num(near, nan=np.inf), np.nan_to_num(ood, nan=-np.inf), label.astype(int))
            evidence = {d.name: line for d in detectors if (line := d.check(traffic)) is not None}
            if evidence:
                alerts.append(Alert(key_id, names.get(key_id, "?"), len(rows), evidence))
        return alerts
    finally:
        db.close()
