"""Oracles: exactly what an attacker may touch, with query counting and an optional budget.

- `local`: `WhiteBox`, `Features` and `Scores` over an in-process model, and the `ThreatModel` bundling them.
- `remote`: `RemoteOracle`, the observation oracle over HTTP (a model served by `modelinv serve`); needs
  httpx (the `serve` extra) only when one is created.
- `wire`: float32 arrays as base64 .npy, the format the server and `RemoteOracle` exchange.

`Observation` (a Literal) and `OBSERVATIONS` name what an attacker may observe.
"""

from modelinv.observation import OBSERVATIONS, SCORES, Observation
from modelinv.oracle.local import WHITE_BOX_PARTS, Features, Oracle, Scores, ThreatModel, WhiteBox
from modelinv.oracle.remote import RemoteOracle, ServedDefense, check_identity, connect, read_key

__all__ = [
    "OBSERVATIONS",
    "SCORES",
    "WHITE_BOX_PARTS",
    "Features",
    "Observation",
    "Oracle",
    "RemoteOracle",
    "Scores",
    "ServedDefense",
    "ThreatModel",
    "WhiteBox",
    "check_identity",
    "connect",
    "read_key",
]
