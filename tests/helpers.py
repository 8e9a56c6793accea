"""Helpers shared by the tests: IDX files as MNIST distributes them, running the CLI in-process, and a
model cache of a test's own."""

import contextlib
import gzip
import os
import struct
import sys

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path, array: np.ndarray, gz: bool = False):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def invoke(*args) -> int:
    """Run `modelinv ARGS` in-process as the console script does; return its exit code."""
    from modelinv.cli import main

    argv, sys.argv = sys.argv, ["modelinv", *map(str, args)]
    try:
        main()
        return 0
    except SystemExit as exc:
        return exc.code
    finally:
        sys.argv = argv


def cli(capsys, *args):
    """Run `modelinv ARGS` in-process; return (exit code, stdout, stderr)."""
    code = invoke(*args)
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0]


@contextlib.contextmanager
def own_model_cache(path):
    """$MODELINV_CACHE set to `path` inside the block, restored after: for the few tests whose point is what
    happens in an empty cache (a first run trains, the second loads). Every other test shares the session's
    cache (tests/conftest.py), so each model is trained once per test session."""
    previous = os.environ.get("MODELINV_CACHE")
    os.environ["MODELINV_CACHE"] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("MODELINV_CACHE", None)
        else:
            os.environ["MODELINV_CACHE"] = previous
