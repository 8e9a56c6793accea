"""Request bodies to validated float32 batches, and outputs back, with a one-line reason for every refusal.

A body is JSON: `{"inputs": [...]}` (nested lists of numbers, one entry per input; JSON true and false
are not numbers) or `{"npy": "<base64 .npy>"}` (a float32 array read with `allow_pickle=False`), with an
optional `"format": "json" | "npy"` for the answer (default: the request's). Both forms carry float32
exactly; numbers sent as lists are range-checked as sent, before they are rounded to float32.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import numpy as np
import torch

from modelinv.errors import ModelinvError
from modelinv.oracle import wire
from modelinv.oracle.wire import encode_npy


class BadInput(Exception):
    """A request the server refuses: `status` (400, 413, 415 or 422) and a one-line `reason`."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Limits:
    """What a batch must satisfy: per-input shape, value range, largest batch and body."""

    input_shape: tuple[int, ...]
    max_batch: int = 512
    max_body_bytes: int = 8 * 2**20
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.max_batch, bool) or self.max_batch < 1:
            raise ModelinvError(f"invalid max_batch: must be at least 1 input, not {self.max_batch}")
        if isinstance(self.max_body_bytes, bool) or self.max_body_bytes < 1:
            raise ModelinvError(f"invalid max_body_bytes: must be at least 1 byte, not {self.max_body_bytes}")


def decode_npy(text: object) -> np.ndarray:
    """A base64 .npy string as an array (never unpickled), else BadInput 400 (every malformed payload, numpy's
    header parser's undocumented escapes included, is a WireError: modelinv.oracle.wire)."""
    try:
        return wire.decode_npy(text)
    except wire.WireError as err:
        raise BadInput(400, str(err)) from None


def _from_lists(inputs: object, limits: Limits) -> np.ndarray:
    """The nested lists as a numeric array (not yet float32: its range is checked before a cast could overflow)."""
    if not isinstance(inputs, list):
        raise BadInput(422, "'inputs' must be a list of inputs")
    try:
        array = np.asarray(inputs)
    except ValueError:
        raise BadInput(422, "'inputs' is ragged or nested too deeply: every input must have the same shape") from None
    if array.dtype.kind not in "iufO" or not set(map(type, _leaves(inputs, array.ndim))) <= {int, float}:
        raise BadInput(422, "'inputs' must hold numbers only")
    if array.dtype.kind != "O":
        return array
    try:  # numbers in an object array: integers past 64 bits
        return check_range(array.astype(np.float64), limits)
    except OverflowError:  # past float64 too
        raise out_of_range(limits) from None


def _leaves(inputs: list, depth: int) -> list:
    """The scalars of a regular nesting of lists `depth` deep (numpy reads [true, 0.5] as [1.0, 0.5] and lists
    of booleans as a bool array: a JSON true or false among the numbers shows only here)."""
    for _ in range(depth - 1):
        inputs = list(itertools.chain.from_iterable(inputs))
    return inputs


def parse(body: bytes, limits: Limits) -> tuple[torch.Tensor, str]:
    """The batch in `body` as a float32 tensor (N, *input_shape), and the answer format."""
    if len(body) > limits.max_body_bytes:
        raise BadInput(413, f"body of {len(body)} bytes exceeds the limit of {limits.max_body_bytes}")
    try:
        request = json.loads(body)
    except RecursionError:
        raise BadInput(400, "body is JSON nested too deeply") from None
    except ValueError as err:  # not JSON, not UTF-8, or an integer past Python's digit limit
        reason = "an integer in the body has too many digits" if "digits" in str(err) else "body is not valid JSON"
        raise BadInput(400, reason) from None
    if not isinstance(request, dict) or set(request) - {"inputs", "npy", "format"} or ("inputs" in request) == ("npy" in request):
        raise BadInput(400, "body must be an object with exactly one of 'inputs' or 'npy' (and optionally 'format')")
    answer = request.get("format", "npy" if "npy" in request else "json")
    if answer not in ("json", "npy"):
        raise BadInput(400, "'format' must be 'json' or 'npy'")
    if "npy" in request:
        array = decode_npy(request["npy"])
        if array.dtype != np.float32:
            raise BadInput(422, f"dtype must be float32, not {array.dtype}")
    else:
        array = _from_lists(request["inputs"], limits)
    return torch.from_numpy(check(array, limits).astype(np.float32, copy=False)), answer


def check(array: np.ndarray, limits: Limits) -> np.ndarray:
    """`array` if it is a batch of finite inputs of the right shape and range, else BadInput naming what is wrong."""
    shape = tuple(array.shape[1:])
    if array.ndim == 0 or shape != tuple(limits.input_shape):
        raise BadInput(422, f"inputs must have shape (N, {', '.join(map(str, limits.input_shape))}), not {tuple(array.shape)}")
    if not 1 <= len(array) <= limits.max_batch:
        raise BadInput(413 if len(array) else 422, f"batch of {len(array)} inputs; allowed 1 to {limits.max_batch}")
    if not np.isfinite(array).all():
        raise BadInput(422, "inputs contain NaN or infinite values")
    return np.ascontiguousarray(check_range(array, limits))


def check_range(array: np.ndarray, limits: Limits) -> np.ndarray:
    """`array` if its values lie in the limits' range, else BadInput 422."""
    if array.min() < limits.low or array.max() > limits.high:
        raise out_of_range(limits)
    return array


def out_of_range(limits: Limits) -> BadInput:
    return BadInput(422, f"input values must lie in [{limits.low:g}, {limits.high:g}]")


def check_content_type(value: str | None) -> None:
    """A declared Content-Type must be JSON (`application/json` or `application/*+json`); an absent one is read as JSON."""
    if value is None:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise BadInput(415, f"Content-Type must be application/json, not {media[:60]!r}")


def answer(output: torch.Tensor, form: str, decimals: int | None = None) -> dict:
    """The response body: outputs as nested lists or as a base64 .npy (float32, or int64 labels).

    With `decimals` (outputs rounded server-side to that many places), JSON carries the rounded decimal
    numbers (0.98), not the float32 nearest to them written out in full (0.9800000190734863); .npy
    carries float32 bits either way."""
    array = output.detach().cpu().numpy()
    if form == "npy":
        return {"npy": encode_npy(array)}
    if decimals is not None and array.dtype.kind == "f":
        return {"outputs": np.round(array.astype(np.float64), decimals).tolist()}
    return {"outputs": array.tolist()}
