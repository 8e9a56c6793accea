"""What a served model releases, built as the in-process oracle an experiment would use, so the server
applies exactly the same output and defense code (modelinv.oracle, modelinv.defenses)."""

from __future__ import annotations

from typing import Any

from modelinv.defenses import OutputDefense, build_defense
from modelinv.errors import ModelinvError
from modelinv.models.layered import LayeredNet
from modelinv.oracle import OBSERVATIONS, Features, Scores

EXPOSURES = "probs, logits, top-k:K, label or features:LAYER"


def build_observer(model: LayeredNet, expose: str, defense: str | None = None, params: dict[str, Any] | None = None) -> Features | Scores:
    """The oracle behind `--expose` (`top-k:K` is probabilities under the top-k defense) and `--defense`."""
    kind, _, arg = expose.partition(":")
    if kind == "top-k":
        if defense is not None:
            raise ModelinvError(f"--expose top-k:K already applies the top-k defense; drop --defense {defense} or expose probs")
        if not arg.isdigit() or int(arg) < 1:
            raise ModelinvError(f"invalid '--expose': top-k needs a positive integer K (top-k:3), not '{expose}'")
        defense, params, kind, arg = "top-k", {"k": int(arg)}, "probs", ""
    if kind not in OBSERVATIONS or bool(arg) != (kind == "features"):
        raise ModelinvError(f"invalid '--expose': '{expose}' (expected {EXPOSURES})")
    built = build_defense(defense, params, arg or None) if defense is not None else None
    if built is not None and not isinstance(built, OutputDefense):
        raise ModelinvError(f"--defense {defense} is a training defense; a served model takes output defenses only")
    if kind == "features":
        return Features(model, arg, defense=built)
    return Scores(model, kind, defense=built)


def describe(observer: Features | Scores) -> dict[str, Any]:
    """The exposure as `GET /v1/info` publishes it: what is observed and derivable, and the output defense's name."""
    features = isinstance(observer, Features)
    return {
        "observe": "features" if features else observer.kind,
        "layer": observer.layer if features else None,
        "provides": sorted(observer.provides),
        "defense": observer.defense.name if observer.defense is not None else None,
    }
