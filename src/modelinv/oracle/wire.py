"""Arrays on the wire: a float32 (or int64 label) array as a base64 .npy string, the form `modelinv serve`
and `RemoteOracle` exchange; bit for bit, and never unpickled."""

from __future__ import annotations

import base64
import binascii
import io
import math
import tokenize

import numpy as np
from numpy.lib import format as npy_format


class WireError(ValueError):
    """A payload that is not a base64-encoded .npy array (the message is a one-line reason)."""


def encode_npy(array: np.ndarray) -> str:
    """`array` as a base64 .npy string (no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_npy(text: object) -> np.ndarray:
    """A base64 .npy string as an array; never unpickles, and never allocates more than the payload
    carries: a header whose shape and dtype do not match the bytes that follow it is refused before
    any array is made (a header may declare 1e14 elements in a few bytes)."""
    if not isinstance(text, str):
        raise WireError("'npy' must be a base64 string")
    try:
        stream = io.BytesIO(base64.b64decode(text, validate=True))
        version = npy_format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise WireError(f"'npy' has unsupported .npy format version {version[0]}.{version[1]}")
        read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
        if dtype.hasobject:
            raise WireError("'npy' holds Python objects; only numeric arrays are accepted")
        declared = math.prod(shape) * dtype.itemsize
        carried = len(stream.getbuffer()) - stream.tell()
        if declared != carried:
            raise WireError(f"'npy' declares shape {tuple(shape)} of {dtype} ({declared} bytes) but carries {carried} bytes")
        array = np.frombuffer(stream.getbuffer(), dtype=dtype, count=math.prod(shape), offset=stream.tell())
        return array.reshape(shape, order="F" if fortran_order else "C").copy()
    except WireError:
        raise
    except (binascii.Error, ValueError, OSError, EOFError, MemoryError, TypeError, RecursionError, tokenize.TokenError):
        # numpy's header parser lets more than its documented ValueError out on a malformed header: an unclosed
        # bracket escapes as tokenize.TokenError, an unhashable dict key as TypeError, 5,000 minus signs as RecursionError
        raise WireError("'npy' is not a base64-encoded .npy array") from None
