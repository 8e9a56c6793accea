"""`RemoteOracle`: the observation oracle interface (modelinv.oracle) over HTTP, so a black-box attack runs
against a URL and an API key exactly as against a local model. Inputs and answers travel as float32
.npy, bit for bit; the server applies its exposure and output defense, the client counts and budgets
queries as the in-process oracles do. Inputs may live on any device (they are copied to the CPU to be sent);
answers are put on the oracle's `device` (the CPU unless given), where the attack then works."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from modelinv.errors import AccessDenied, ModelinvError, QueryBudgetExceeded
from modelinv.models.store import module_digest
from modelinv.oracle.local import Oracle
from modelinv.oracle.wire import WireError, decode_npy, encode_npy

if TYPE_CHECKING:
    import httpx


def _httpx() -> ModuleType:
    """httpx, an optional dependency (the `serve` extra): imported when a remote oracle is created, so
    `import modelinv` and local experiments work without it."""
    try:
        import httpx
    except ImportError:
        raise ModelinvError("querying a served model (access.endpoint) needs httpx: pip install 'modelinv[serve]'") from None
    return httpx


@dataclass(frozen=True)
class ServedDefense:
    """The output defense the server applies, known by name only (its perturbation happens server-side)."""

    name: str


class RemoteOracle(Oracle):
    """A model served by `modelinv serve` at `url`, queried with API key `key`.

    `__call__` is an attacker query (counted against `budget`, and against the key's budget on the server);
    `intercept` is victim traffic, sent with `victim_key` when given so the server logs it as the victim's.
    A rate-limited request is retried after the server's Retry-After, up to `max_wait` seconds in all.
    Answers are put on `device` (the attacker's, default the CPU).
    """

    def __init__(self, url: str, key: str, budget: int | None = None, victim_key: str | None = None,
                 batch_size: int = 512, timeout: float = 60.0, max_wait: float = 60.0, device: torch.device | str = "cpu"):
        super().__init__(budget)
        self._device = torch.device(device)
        self.url, self.key, self.victim_key = url.rstrip("/"), key, victim_key
        self.batch_size, self.max_wait = batch_size, max_wait
        self.httpx = _httpx()
        self.http = self.httpx.Client(timeout=timeout, trust_env=False)
        info = self._get("/v1/info", key)
        exposure = info["exposure"]
        self.kind, self.layer = exposure["observe"], exposure["layer"]
        self.provides = frozenset(exposure["provides"])
        self.defense = ServedDefense(exposure["defense"]) if exposure["defense"] else None
        self.input_shape = tuple(info["input_shape"])
        self.identity: dict[str, Any] | None = info.get("model")  # what the server says it serves (None: not published)
        self.batch_size = min(batch_size, info["max_batch"])

    @property
    def device(self) -> torch.device:
        """Where answers are put: the attacker's device (the server's model may live anywhere)."""
        return self._device

    def close(self) -> None:
        self.http.close()

    def _check(self, response: httpx.Response) -> dict:
        if response.status_code == 200:
            return response.json()
        try:
            body = response.json()
        except ValueError:
            body = {}
        reason = body.get("error", response.reason_phrase)
        if response.status_code in (401, 403):
            raise AccessDenied(f"{self.url} refused the API key: {reason}")
        if body.get("code") == "budget_exhausted":
            raise QueryBudgetExceeded(f"{self.url}: {reason}")
        raise ModelinvError(f"{self.url} answered {response.status_code}: {reason}")

    def _get(self, path: str, key: str) -> dict:
        try:
            return self._check(self.http.get(self.url + path, headers={"Authorization": f"Bearer {key}"}))
        except self.httpx.HTTPError as err:
            raise ModelinvError(f"cannot reach {self.url}: {err}") from None

    def _post(self, x: np.ndarray, key: str) -> torch.Tensor:
        body = {"npy": encode_npy(x)}
        deadline = time.monotonic() + self.max_wait
        while True:
            try:
                response = self.http.post(f"{self.url}/v1/predict", json=body, headers={"Authorization": f"Bearer {key}"})
            except self.httpx.HTTPError as err:
                raise ModelinvError(f"cannot reach {self.url}: {err}") from None
            if response.status_code == 429 and response.headers.get("retry-after"):
                wait = float(response.headers["retry-after"])
                if time.monotonic() + wait <= deadline:
                    time.sleep(wait)
                    continue
            try:
                return torch.from_numpy(decode_npy(self._check(response)["npy"]).copy())
            except WireError as err:
                raise ModelinvError(f"{self.url} answered an unreadable array: {err}") from None

    def _observe(self, x: torch.Tensor, key: str) -> torch.Tensor:
        array = x.detach().cpu().contiguous().to(torch.float32).numpy()
        return torch.cat([self._post(array[i : i + self.batch_size], key) for i in range(0, len(array), self.batch_size)]).to(self.device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """An attacker query: answers for chosen inputs, counted against the budget."""
        self.charge(x.shape[0])
        return self._observe(x, self.key)

    def intercept(self, x: torch.Tensor) -> torch.Tensor:
        """What the attacker sees of the victim's own traffic: not a query, not counted."""
        return self._observe(x, self.victim_key or self.key)


def read_key(key_env: str, key_file: str | None) -> str:
    """The API key from `key_file` if given, else from the environment variable `key_env`."""
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise ModelinvError(f"API key file not found: {path} (access.key_file)")
        return path.read_text().strip()
    key = os.environ.get(key_env, "").strip()
    if not key:
        raise ModelinvError(f"no API key: set the environment variable {key_env} (access.key_env) or access.key_file")
    return key


def check_identity(oracle: RemoteOracle, arch: str, model: nn.Module) -> None:
    """Refuse a served model that is not the experiment's target: the architecture, input shape, classes and
    weights digest `GET /v1/info` publishes must be those of `model` (the config's `target`, as the run built or
    loaded it). A server that hides its identity (`--hide-identity`) cannot be checked: the row records that."""
    served = oracle.identity
    if served is None:
        return
    mine = {"arch": arch, "input_shape": list(model.spec["input_shape"]), "num_classes": int(model.spec["num_classes"]), "weights_digest": module_digest(model)}
    differ = [k for k in ("arch", "input_shape", "num_classes", "weights_digest") if served.get(k) != mine[k]]
    if differ:
        def show(d: dict) -> str:
            return f"{d.get('arch')} {tuple(d.get('input_shape') or ())} with {d.get('num_classes')} classes, weights digest {str(d.get('weights_digest'))[:12]}"
        raise ModelinvError(f"target: {oracle.url} serves {show(served)}, not the config's target {show(mine)} "
                            f"({', '.join(differ)} differ): set target (arch, weights) to the served model")


def connect(access: Any, layer: str | None, defense: Any = None, device: torch.device | str = "cpu") -> RemoteOracle:
    """The oracle of an experiment's `access.endpoint`: what it serves must be what `access.observe` (and,
    for features, the cut `layer`) declares; output defenses are the server's (`modelinv serve --defense`).
    Its answers are put on `device`, the run's."""
    if defense is not None:
        raise ModelinvError(f"defense '{defense.name}' perturbs outputs, which a served model does on the server: serve it with --defense {defense.name} and drop it from the experiment")
    oracle = RemoteOracle(access.endpoint, read_key(access.key_env, access.key_file), budget=access.query_budget, device=device)
    served = f"{oracle.kind}" + (f" at {oracle.layer}" if oracle.layer else "")
    if oracle.kind != access.observe or (oracle.kind == "features" and oracle.layer != layer):
        wanted = f"{access.observe}" + (f" at {layer}" if access.observe == "features" else "")
        raise ModelinvError(f"access.observe: {access.endpoint} serves {served}, not {wanted}")
    return oracle
