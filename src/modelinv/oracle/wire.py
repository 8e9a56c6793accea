"""Arrays on the wire: a float32 (or int64 label) array as a base64 .npy string, the form `modelinv serve`
and `RemoteOracle` exchange; bit for bit, and never unpickled."""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np


class WireError(ValueError):
    """A payload that is not a base64-encoded .npy array (the message is a one-line reason)."""


def encode_npy(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_npy(text: object) -> np.ndarray:
    """A base64 .npy string as an array; never unpickles."""
    if not isinstance(text, str):
        raise WireError("'npy' must be a base64 string")
    try:
        return np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False)
    except (binascii.Error, ValueError, OSError, EOFError):
        raise WireError("'npy' is not a base64-encoded .npy array") from None
