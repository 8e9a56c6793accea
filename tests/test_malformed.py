"""A corpus of malformed inputs (configs, data files, checkpoints, command-line flags; HTTP payloads are in
test_serve): every one is refused up front with exit code 2 and one line on stderr, with no traceback,
nothing created (no output directory, no cache entry) and nothing lost (a finished run stays as it was).

The CLI runs in-process (a few cases in a real process), so the corpus takes seconds: every case must fail
before anything is trained; one that trains would show up as a new entry in the model cache. The config
loader is also fuzzed (hypothesis): any input validates or raises ModelinvError, never another exception.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import cli, idx_bytes

RUN = {
    "seed": 1,
    "data": {"source": "mnist5k"},
    "target": {"arch": "lenet", "train": {"epochs": 1}},
    "evaluator": {"arch": "eval-cnn", "train": {"epochs": 1}},
    "access": {"observe": "features", "layer": "relu2"},
    "attack": {"name": "inverse-net", "params": {"epochs": 1}},
    "num_targets": 8,
}
SCENARIO = {k: v for k, v in RUN.items() if k != "attack"}
GRID = {**SCENARIO, "attacks": [RUN["attack"]]}
TRADEOFF = {**SCENARIO, "attacks": [RUN["attack"]], "sweep": {"defense": "laplace-noise", "param": "scale", "values": [0.1, 0.5]}}

# The issue's 602-byte alias bomb, one level deeper than the one that cost `sweep` 29 s and 1.6 GB.
ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)


def with_fields(base: dict, **fields: Any) -> dict:
    """`base` with `fields` replaced; a dotted field name (`target__train__lr`) reaches into nested mappings."""
    out = json.loads(json.dumps(base))
    for name, value in fields.items():
        *parents, last = name.split("__")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def npz_bytes(members: dict[str, bytes]) -> bytes:
    """A zip of `members`, stored uncompressed with a fixed date (the same bytes every time), as numpy.savez writes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def flipped_last_byte(archive: bytes, member: bytes) -> bytes:
    """`archive` with the last byte of the stored `member` flipped: the member's CRC no longer matches."""
    end = archive.index(member) + len(member) - 1
    return archive[:end] + bytes([archive[end] ^ 0xFF]) + archive[end + 1 :]


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def images_npz(y: np.ndarray, n: int | None = None) -> bytes:
    n = len(y) if n is None else n
    x = np.random.default_rng(0).integers(0, 256, (n, 8, 8), dtype=np.uint8)
    return npz_bytes({"x.npy": npy_bytes(x), "y.npy": npy_bytes(y)})


def lying_npy_header(shape: tuple[int, ...]) -> bytes:
    """A .npy member whose header declares `shape` of uint8 but which stores 64 bytes."""
    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + bytes(64)


def csv_text(rows: int = 40, broken: dict[int, str] | None = None, classes: int = 2) -> str:
    """A numeric csv of `rows` records (columns a, b, label), with cell `a` of data row i replaced by `broken[i]`."""
    lines = ["a,b,label"]
    for i in range(rows):
        a = (broken or {}).get(i + 1, f"{i * 0.5:g}")
        lines.append(f"{a},{(i * 7) % 11},{i % classes}")
    return "\n".join(lines) + "\n"


@dataclass
class Work:
    """The scratch directory of one case: files the case writes, directories it makes read-only, its environment."""

    path: Path
    env: dict[str, str] = field(default_factory=dict)
    frozen: list[Path] = field(default_factory=list)

    def write(self, name: str, data: str | bytes) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data)
        return target

    def config(self, data: dict | str, name: str = "config.yaml") -> Path:
        return self.write(name, data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))

    def read_only(self, directory: Path) -> Path:
        """`directory` (made if needed) made read-only for this process: chattr +i as root, else chmod 555."""
        directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", directory], capture_output=True).returncode != 0:
                pytest.skip("running as root on a file system without chattr +i: cannot make a read-only directory")
        else:
            directory.chmod(0o555)
        self.frozen.append(directory)
        return directory

    def thaw(self) -> None:
        for directory in self.frozen:
            if os.geteuid() == 0:
                subprocess.run(["chattr", "-i", directory], check=True)
            else:
                directory.chmod(0o755)

    def finished_results(self, name: str = "results") -> Path:
        """A results directory holding one finished run (as the store records it), which no failure may touch."""
        from modelinv.results import ResultsStore

        directory = self.path / name
        store = ResultsStore(directory)
        try:
            row = {"attack": "inverse-net", "data": "mnist5k", "model": "lenet", "seed": 1, "target_test_acc": 0.9, "psnr": 12.5}
            store.record("0123456789abcdef", RUN, row, directory / "runs" / "0123456789abcdef")
        finally:
            store.close()
        (directory / "runs" / "0123456789abcdef").mkdir(parents=True)
        (directory / "runs" / "0123456789abcdef" / "results.json").write_text(json.dumps(row))
        return directory


def lenet_weights(work: Work, arch: str = "lenet", name: str = "model.safetensors") -> Path:
    """Untrained weights of `arch` for 1x28x28 inputs and 10 classes, as a user would give them to `audit --model`."""
    from safetensors.torch import save_file

    from modelinv.models import build_model

    net = build_model(arch, (1, 28, 28), 10)
    path = work.path / name
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def audit_args(work: Work, *extra: str, model: Path | None = None, access: str = "features:relu2", out: Path | None = None) -> list:
    model = model if model is not None else lenet_weights(work)
    args = ["audit", "--model", model, "--data", "mnist5k", "--access", access, "--out", out or work.path / "audit-out"]
    return args + (["--arch", "lenet"] if "--torchscript" not in extra and "--arch" not in extra else []) + list(extra)


def train_args(data: str, *extra: str) -> list:
    return ["train", "--data", data, "--model", "mlp", "--epochs", "1", *extra]


Setup = Callable[[Work], list]
CASES: dict[str, tuple[Setup, str]] = {}
"""name -> (setup writing the case's files and returning the command line, a string the error must contain)."""


def case(name: str, needle: str = "") -> Callable[[Setup], Setup]:
    def register(setup: Setup) -> Setup:
        assert name not in CASES, name
        CASES[name] = (setup, needle)
        return setup

    return register


def config_case(name: str, data: dict | str | bytes, needle: str = "", command: str = "run") -> None:
    """A case: `modelinv COMMAND CONFIG --out OUT` with the config file holding `data` (a mapping, YAML text or bytes)."""

    def setup(work: Work) -> list:
        path = work.write("config.yaml", data) if isinstance(data, bytes) else work.config(data)
        return [command, path, "--out", work.path / "out"]

    case(name, needle)(setup)


# --- configs: reading the file ------------------------------------------------------------------------------------

for command, base in (("run", RUN), ("sweep", GRID), ("tradeoff", TRADEOFF)):
    config_case(f"{command}-binary-config", b"\xff\xfe\x00\x81\x93NUMPY garbage \x00\x01", "not UTF-8 text", command)
    config_case(f"{command}-duplicate-key", "seed: 1\n" + yaml.safe_dump(base), "duplicate key 'seed'", command)
config_case("sweep-alias-bomb", ALIAS_BOMB, "expands to more than", "sweep")
config_case("run-alias-bomb", ALIAS_BOMB, "expands to more than")
config_case("tradeoff-alias-bomb", ALIAS_BOMB, "expands to more than", "tradeoff")
config_case("too-many-aliases", "a: &a 1\nb: [" + ", ".join(["*a"] * 2000) + "]\n", "aliases")
config_case("recursive-alias", "seed: &s [*s]\n", "refers to a node that contains it")
config_case("nested-10000-deep", "a: " + "[" * 10000 + "]" * 10000 + "\n", "nested")
config_case("python-object-tag", "seed: !!python/object/apply:os.system ['true']\n", "could not determine a constructor")
config_case("nul-character", "seed: 1\x00\n", "unacceptable character")
config_case("integer-of-5000-digits", "seed: " + "9" * 5000 + "\n", "config file")
config_case("invalid-date", "seed: 2001-02-30\n", "day is out of range")
config_case("duplicate-nested-key", "target:\n  arch: lenet\n  arch: mlp\n" + yaml.safe_dump({k: v for k, v in RUN.items() if k != "target"}), "duplicate key 'arch'")
config_case("empty-config", "", "must hold a mapping")
config_case("config-is-a-list", "- 1\n- 2\n", "must hold a mapping")
config_case("config-is-a-scalar", "hello\n", "must hold a mapping")
config_case("invalid-yaml", "seed: [1\n", "not valid YAML")
config_case("two-documents", yaml.safe_dump(RUN) + "---\n" + yaml.safe_dump(RUN), "not valid YAML")
config_case("utf16-config", yaml.safe_dump(RUN).encode("utf-16"), "not UTF-8")


@case("config-is-a-folder", "is a folder")
def _(work):
    (work.path / "cfg").mkdir()
    return ["run", work.path / "cfg", "--out", work.path / "out"]


@case("config-missing", "not found")
def _(work):
    return ["run", work.path / "nope.yaml", "--out", work.path / "out"]


# --- configs: values ----------------------------------------------------------------------------------------------

VALUES = {
    "seed-1e23": ({"seed": 1e23}, "seed"),
    "seed-negative": ({"seed": -1}, "seed"),
    "seed-2-to-32": ({"seed": 2**32}, "seed"),
    "seed-true": ({"seed": True}, "seed"),
    "seed-text": ({"seed": "abc"}, "seed"),
    "seed-float": ({"seed": 1.5}, "seed"),
    "num-targets-true": ({"num_targets": True}, "num_targets"),
    "num-targets-zero": ({"num_targets": 0}, "num_targets"),
    "num-targets-million": ({"num_targets": 1_000_000}, "num_targets 1000000 is more than the 700"),
    "num-targets-float": ({"num_targets": 2.5}, "num_targets"),
    "per-class-true": ({"per_class": True}, "per_class"),
    "metrics-empty": ({"metrics": []}, "metrics"),
    "metrics-unknown": ({"metrics": ["psnrr"]}, "psnrr"),
    "metrics-not-a-list": ({"metrics": "psnr"}, "metrics"),
    "lr-1e300": ({"target__train__lr": 1e300}, "target.train.lr"),
    "lr-inf": ({"target__train__lr": float("inf")}, "target.train.lr"),
    "lr-nan": ({"target__train__lr": float("nan")}, "target.train.lr"),
    "lr-zero": ({"target__train__lr": 0}, "target.train.lr"),
    "epochs-zero": ({"target__train__epochs": 0}, "target.train.epochs"),
    "epochs-true": ({"target__train__epochs": True}, "target.train.epochs"),
    "epochs-float": ({"target__train__epochs": 2.0}, "target.train.epochs"),
    "batch-size-true": ({"target__train__batch_size": True}, "target.train.batch_size"),
    "evaluator-epochs-zero": ({"evaluator__train__epochs": 0}, "evaluator.train.epochs"),
    "weight-decay-inf": ({"target__train__weight_decay": float("inf")}, "weight_decay"),
    "image-size-30000": ({"data__image_size": 30000}, "memory budget"),
    "image-size-true": ({"data__image_size": True}, "data.image_size"),
    "image-size-2": ({"data__image_size": 2}, "data.image_size"),
    "test-fraction-1": ({"data__test_fraction": 1.0}, "data.test_fraction"),
    "query-budget-true": ({"access__query_budget": True}, "access.query_budget"),
    "query-budget-zero": ({"access__query_budget": 0}, "access.query_budget"),
    "private-classes-true": ({"data__split": "class-disjoint", "data__private_classes": [True]}, "private_classes"),
    "unknown-field": ({"atack": {"name": "rmle"}}, "unknown field 'atack'"),
    "unknown-nested-field": ({"target__train__epoch": 3}, "target.train.epoch"),
    "unknown-attack": ({"attack": {"name": "rmlee"}}, "rmlee"),
    "unknown-attack-param": ({"attack__params__epochz": 1}, "epochz"),
    "unknown-arch": ({"target__arch": "lenett"}, "lenett"),
    "unknown-data-source": ({"data__source": "mnist6k"}, "mnist6k"),
    "unknown-split": ({"data__split": "random"}, "data.split"),
    "unknown-defense": ({"defense": {"name": "laplace"}}, "laplace"),
    "access-layer-relu9": ({"access__layer": "relu9"}, "relu9"),
    "access-needs-white-box": ({"attack": {"name": "rmle"}}, "white-box"),
    "defense-layer-relu9": ({"defense": {"name": "laplace-noise", "params": {"scale": 0.1}}, "access__layer": "relu9"}, "relu9"),
    "attribute-attack-on-images": ({"attack": {"name": "fredrikson-attr"}, "access__observe": "probs", "access__layer": None}, "sensitive"),
    "csv-source-missing": ({"data__source": "csv:/nonexistent/table.csv"}, "not found"),
    "weights-missing": ({"target__weights": "/nonexistent/model.safetensors"}, "/nonexistent/model.safetensors"),
}
for name, (fields, needle) in VALUES.items():
    config_case(name, with_fields(RUN, **fields), needle)

GRID_VALUES = {
    "sweep-seeds-empty": ({"seeds": []}, "seeds"),
    "sweep-seeds-1e23": ({"seeds": [1e23]}, "seeds"),
    "sweep-seeds-true": ({"seeds": [True]}, "seeds"),
    "sweep-datasets-empty": ({"datasets": []}, "datasets"),
    "sweep-attacks-empty": ({"attacks": []}, "attacks"),
    "sweep-num-targets-million": ({"num_targets": 1_000_000}, "at most 700"),
    "sweep-layer-relu9": ({"access__layer": "relu9"}, "relu9"),
}
for name, (fields, needle) in GRID_VALUES.items():
    config_case(name, with_fields(GRID, **fields), needle, "sweep")

TRADEOFF_VALUES = {
    "tradeoff-values-empty": ({"sweep__values": []}, "sweep.values"),
    "tradeoff-values-inf": ({"sweep__values": [float("inf")]}, "sweep.values"),
    "tradeoff-values-true": ({"sweep__values": [True]}, "sweep.values"),
    "tradeoff-seeds-true": ({"seeds": [True]}, "seeds"),
    "tradeoff-seeds-empty": ({"seeds": []}, "seeds"),
    "tradeoff-unknown-defense-param": ({"sweep__param": "scal"}, "scal"),
}
for name, (fields, needle) in TRADEOFF_VALUES.items():
    config_case(name, with_fields(TRADEOFF, **fields), needle, "tradeoff")


# --- output directories: checked before any work, nothing lost -----------------------------------------------------


@case("run-out-is-a-file", "is a file")
def _(work):
    return ["run", work.config(RUN), "--out", work.write("out", "keep me")]


@case("run-out-under-a-file", "is a file")
def _(work):
    return ["run", work.config(RUN), "--out", work.write("out", "keep me") / "sub"]


@case("run-out-read-only", "writable")
def _(work):
    return ["run", work.config(RUN), "--out", work.read_only(work.path / "out")]


@case("run-out-under-read-only", "writable")
def _(work):
    return ["run", work.config(RUN), "--out", work.read_only(work.path / "ro") / "out"]


@case("sweep-out-read-only", "writable")
def _(work):
    return ["sweep", work.config(GRID), "--out", work.read_only(work.path / "out")]


@case("tradeoff-out-read-only", "writable")
def _(work):
    return ["tradeoff", work.config(TRADEOFF), "--out", work.read_only(work.path / "out")]


@case("demo-out-is-a-file", "is a file")
def _(work):
    return ["demo", "--out", work.write("out", "keep me")]


@case("audit-out-read-only", "writable")
def _(work):
    return audit_args(work, out=work.read_only(work.path / "audit-out"))


@case("audit-out-is-a-file", "audit-out")
def _(work):
    work.write("audit-out", "keep me")
    return audit_args(work)


@case("report-dir-read-only", "writable")
def _(work):
    return ["report", work.read_only(work.finished_results())]


@case("report-dir-is-a-file", "is a file")
def _(work):
    return ["report", work.write("results", "keep me")]


@case("finished-run-kept-on-bad-config", "num_targets")
def _(work):
    return ["run", work.config(with_fields(RUN, num_targets=1_000_000)), "--out", work.finished_results()]


@case("finished-run-kept-on-read-only-runs", "writable")
def _(work):
    results = work.finished_results()
    work.read_only(results)
    return ["sweep", work.config(GRID), "--out", results]


# --- command-line flags --------------------------------------------------------------------------------------------

FLAGS = {
    "train-epochs-0": (["train", "--epochs", "0"], "--epochs"),
    "train-epochs-negative": (["train", "--epochs", "-3"], "--epochs"),
    "train-seed-negative": (["train", "--seed", "-1"], "--seed"),
    "train-seed-1e23": (["train", "--seed", "1e23"], "--seed"),
    "train-seed-huge": (["train", "--seed", "99999999999999999999999"], "--seed"),
    "train-image-size-30000": (["train", "--image-size", "30000", "--epochs", "1"], "memory budget"),
    "train-image-size-2": (["train", "--image-size", "2"], "--image-size"),
    "train-unknown-model": (["train", "--model", "lenett"], "lenett"),
    "train-unknown-split": (["train", "--split", "random"], "data.split"),
    "train-unknown-data": (["train", "--data", "mnist6k"], "mnist6k"),
    "train-label-column-on-images": (["train", "--label-column", "y"], "label_column"),
    "train-unknown-option": (["train", "--epoch", "3"], "--epoch"),
    "run-threads-0": (["run", "CONFIG", "--out", "OUT", "--threads", "0"], "threads"),
    "sweep-workers-0": (["sweep", "CONFIG", "--out", "OUT", "--workers", "0"], "workers"),
    "sweep-unknown-executor": (["sweep", "CONFIG", "--out", "OUT", "--executor", "slurm"], "slurm"),
    "results-unknown-format": (["results", "OUT", "--format", "xml"], "xml"),
    "results-missing-dir": (["results", "OUT"], "no results"),
    "list-unknown-catalogue": (["list", "gadgets"], "gadgets"),
}


def flag_setup(args: list[str]) -> Setup:
    def setup(work: Work) -> list:
        config = work.config(GRID if args[0] == "sweep" else RUN)
        return [config if a == "CONFIG" else work.path / "out" if a == "OUT" else a for a in args]

    return setup


for name, (args, needle) in FLAGS.items():
    case(name, needle)(flag_setup(args))


AUDIT_FLAGS = {
    "audit-access-relu9": ((), "features:relu9", "relu9"),
    "audit-access-unknown": ((), "pixels", "invalid access"),
    "audit-num-targets-0": (("--num-targets", "0"), "features:relu2", "--num-targets"),
    "audit-num-targets-million": (("--num-targets", "1000000"), "features:relu2", "at most 700"),
    "audit-evaluator-epochs-0": (("--evaluator-epochs", "0"), "features:relu2", "--evaluator-epochs"),
    "audit-seed-negative": (("--seed", "-1"), "features:relu2", "--seed"),
    "audit-arch-and-torchscript": (("--torchscript", "--arch", "lenet"), "features:relu2", "exactly one"),
    "audit-unknown-attack": (("--attack", "rmlee"), "features:relu2", "rmlee"),
    "audit-attack-not-allowed": (("--attack", "rmle"), "features:relu2", "white-box"),
    "audit-white-box-unknown": (("--white-box", "half"), "features:relu2", "white_box"),
}
for name, (extra, access, needle) in AUDIT_FLAGS.items():
    case(name, needle)(lambda work, extra=extra, access=access: audit_args(work, *extra, access=access))


@case("audit-params-binary", "not UTF-8 text")
def _(work):
    return audit_args(work, "--params", str(work.write("params.yaml", b"\x80\x81\xfe binary")))


@case("audit-params-list", "must hold a mapping")
def _(work):
    return audit_args(work, "--params", str(work.write("params.yaml", "- 1\n- 2\n")))


@case("audit-params-duplicate", "duplicate key 'inverse-net'")
def _(work):
    return audit_args(work, "--params", str(work.write("params.yaml", "inverse-net: {epochs: 1}\ninverse-net: {epochs: 2}\n")))


@case("audit-params-not-mappings", "parameter mappings")
def _(work):
    return audit_args(work, "--params", str(work.write("params.yaml", "inverse-net: 3\n")))


@case("audit-params-alias-bomb", "expands to more than")
def _(work):
    return audit_args(work, "--params", str(work.write("params.yaml", ALIAS_BOMB)))


@case("audit-tabular-binary", "not UTF-8 text")
def _(work):
    return audit_args(work, "--tabular", str(work.write("schema.yaml", b"\xff\xd8\xff\xe0 jpeg")))


@case("audit-params-missing", "not found")
def _(work):
    return audit_args(work, "--params", str(work.path / "nope.yaml"))


# --- data files ----------------------------------------------------------------------------------------------------

DATA: dict[str, tuple[str, Callable[[], bytes | str], str]] = {
    # name: (file source prefix, file contents, needle)
    "npz-truncated": ("npz", lambda: images_npz(np.arange(20) % 2)[:300], "npz archive"),
    "npz-npy-header-1e11": ("npz", lambda: npz_bytes({"x.npy": lying_npy_header((10**11, 28, 28)), "y.npy": npy_bytes(np.arange(4))}), "declares shape"),
    "npz-raw-pickle-member": ("npz", lambda: npz_bytes({"x": b"\x80\x04\x95cos\nsystem\n.", "y.npy": npy_bytes(np.arange(4))}), "no pickles"),
    "npz-object-array": ("npz", lambda: npz_bytes({"x.npy": npy_bytes(np.array([{"a": 1}, None], dtype=object), allow_pickle=True), "y.npy": npy_bytes(np.arange(2))}), "never unpickles"),
    "npz-one-class": ("npz", lambda: images_npz(np.zeros(20, dtype=np.int64)), "only one class"),
    "npz-missing-y": ("npz", lambda: npz_bytes({"x.npy": npy_bytes(np.zeros((4, 8, 8), np.uint8))}), "no array 'y'"),
    "npz-single-npy": ("npz", lambda: npy_bytes(np.zeros((4, 8, 8), np.uint8)), "single .npy array"),
    "npz-text": ("npz", lambda: "x,y\n1,2\n", "npz archive"),
    "npz-float-out-of-range": ("npz", lambda: npz_bytes({"x.npy": npy_bytes(np.full((4, 8, 8), np.inf, np.float32)), "y.npy": npy_bytes(np.arange(4) % 2)}), "outside [0, 1]"),
    "npz-wrong-ndim": ("npz", lambda: npz_bytes({"x.npy": npy_bytes(np.zeros((4, 64), np.uint8)), "y.npy": npy_bytes(np.arange(4) % 2)}), "shape"),
    "npz-length-mismatch": ("npz", lambda: images_npz(np.arange(20) % 2, n=19), "labels"),
    "npz-npy-version-3": ("npz", lambda: npz_bytes({"x.npy": b"\x93NUMPY\x03\x00" + bytes(60), "y.npy": npy_bytes(np.arange(4))}), "version 3.0"),
    "npz-bad-crc": ("npz", lambda: flipped_last_byte(images_npz(np.arange(20) % 2), npy_bytes(np.arange(20) % 2)), "CRC"),
    "csv-one-class": ("csv", lambda: csv_text(classes=1), "only one class"),
    "csv-garbage-cell": ("csv", lambda: csv_text(broken={17: "abc"}), "column 'a' holds numbers but row 17"),
    "csv-inf-cell": ("csv", lambda: csv_text(broken={5: "inf"}), "non-finite value 'inf' in column 'a' at row 5"),
    "csv-nul-byte": ("csv", lambda: csv_text(broken={9: "1\x00"}), "NUL byte on line 10"),
    "csv-binary": ("csv", lambda: b"\x89PNG\r\n\x1a\n\xff\xfe" + bytes(range(256)), "not UTF-8"),
    "csv-ragged-row": ("csv", lambda: csv_text() + "1,2\n", "fields"),
    "csv-missing-value": ("csv", lambda: csv_text(broken={3: "NA"}), "missing value"),
    "csv-empty": ("csv", lambda: "", "empty"),
    "csv-huge-label": ("csv", lambda: csv_text().replace(",0\n", ",1" + "0" * 5000 + "\n", 1), "label"),
    "csv-truncated-gzip": ("csv", lambda: gzip.compress(csv_text().encode())[:-20], "cannot read"),
    "idx-bad-magic": ("idx", lambda: b"\x00\x00\x09\x03" + bytes(100), "bad IDX magic"),
    "idx-truncated": ("idx", lambda: idx_bytes(np.zeros((10, 8, 8)))[:-7], "IDX header announces"),
    "idx-header-1e9-images": ("idx", lambda: b"\x00\x00\x08\x03" + np.array([10**9, 28, 28], ">u4").tobytes() + bytes(64), "IDX header announces"),
    "idx-truncated-gzip": ("idx", lambda: gzip.compress(idx_bytes(np.zeros((10, 8, 8))))[:30], "cannot read"),
}


def data_setup(prefix: str, contents: Callable[[], bytes | str]) -> Setup:
    def setup(work: Work) -> list:
        name = {"npz": "data.npz", "csv": "table.csv", "idx": "train-images-idx3-ubyte"}[prefix]
        path = work.write(name, contents())
        if prefix == "idx":
            work.write("train-labels-idx1-ubyte", idx_bytes(np.arange(10) % 2))
        return train_args(f"{prefix}:{path}", *(["--label-column", "label"] if prefix == "csv" else []))

    return setup


for name, (prefix, contents, needle) in DATA.items():
    case(name, needle)(data_setup(prefix, contents))


@case("idx-one-class", "only one class")
def _(work):
    images = work.write("train-images-idx3-ubyte", idx_bytes(np.zeros((10, 8, 8))))
    work.write("train-labels-idx1-ubyte", idx_bytes(np.full(10, 3)))
    return train_args(f"idx:{images}")


@case("csv-gzip-bomb", "memory budget")
def _(work):
    work.env["MODELINV_MEMORY_BUDGET_GB"] = str(2**20 / 2**30)  # 1 MiB; the file decompresses to 2 MiB
    path = work.write("table.csv", gzip.compress(("a,b,label\n" + "1,2,0\n" * (2**21 // 6)).encode()))
    return train_args(f"csv:{path}", "--label-column", "label")


@case("npz-over-memory-budget", "memory budget")
def _(work):
    work.env["MODELINV_MEMORY_BUDGET_GB"] = str(2**16 / 2**30)  # 64 KiB; x holds 100 KiB
    path = work.write("data.npz", images_npz(np.arange(1600) % 2))
    return train_args(f"npz:{path}")


@case("folder-one-class", "only one class")
def _(work):
    from PIL import Image

    for i in range(3):
        (work.path / "faces" / "alice").mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), i * 50).save(work.path / "faces" / "alice" / f"{i}.png")
    return train_args(f"folder:{work.path / 'faces'}")


@case("folder-corrupt-image", "cannot read image file")
def _(work):
    from PIL import Image

    for person in ("alice", "bob"):
        (work.path / "faces" / person).mkdir(parents=True)
        Image.new("L", (8, 8), 0).save(work.path / "faces" / person / "0.png")
    (work.path / "faces" / "bob" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return train_args(f"folder:{work.path / 'faces'}")


@case("folder-empty", "no class sub-folders")
def _(work):
    (work.path / "faces").mkdir()
    return train_args(f"folder:{work.path / 'faces'}")


@case("folder-image-size-30000", "memory budget")
def _(work):
    from PIL import Image

    for person in ("alice", "bob"):
        (work.path / "faces" / person).mkdir(parents=True)
        Image.new("L", (8, 8), 0).save(work.path / "faces" / person / "0.png")
    return train_args(f"folder:{work.path / 'faces'}", "--image-size", "30000")


# --- checkpoints (a user's model to audit, or given weights in a config) -------------------------------------------

CHECKPOINTS: dict[str, tuple[Callable[[Work], Path], tuple[str, ...], str]] = {
    "checkpoint-missing": (lambda work: work.path / "nope.safetensors", (), "nope.safetensors"),
    "checkpoint-garbage": (lambda work: work.write("model.safetensors", b"garbage" * 10), (), "model.safetensors"),
    "checkpoint-truncated": (lambda work: work.write("cut.safetensors", lenet_weights(work).read_bytes()[:2000]), (), "cut.safetensors"),
    "checkpoint-torch-pickle": (lambda work: work.write("model.pt", b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."), (), "model.pt"),
    "checkpoint-other-arch": (lambda work: lenet_weights(work, "mlp", "mlp.safetensors"), (), "mlp.safetensors"),
    "checkpoint-is-a-folder": (lambda work: work.path, (), ""),
    "checkpoint-torchscript-garbage": (lambda work: work.write("model.ts", b"PK\x03\x04 not a torchscript zip"), ("--torchscript",), ""),
}
for name, (make, extra, needle) in CHECKPOINTS.items():
    case(name, needle)(lambda work, make=make, extra=extra: audit_args(work, *extra, model=make(work)))


@case("config-weights-garbage", "model.safetensors")
def _(work):
    weights = work.write("model.safetensors", b"\x00" * 64)
    return ["run", work.config(with_fields(RUN, target__weights=str(weights))), "--out", work.path / "out"]


# --- the corpus test -----------------------------------------------------------------------------------------------


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file under `roots`, with a hash of its bytes. (Empty folders are not compared: they hold nothing
    to lose or to mistake for a result, and `modelinv.api.run_audit` creates its output folder to check it.)"""
    found = {}
    for root in roots:
        for dirpath, _, filenames in os.walk(root):
            for name in filenames:
                path = os.path.join(dirpath, name)
                found[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return found


def test_corpus_size():
    assert len(CASES) >= 80, len(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_refused_up_front(name, capsys, tmp_path, monkeypatch):
    setup, needle = CASES[name]
    work = Work(tmp_path / "work")
    work.path.mkdir()
    monkeypatch.chdir(work.path)  # `audit` and `demo` write into the working directory by default
    try:
        args = setup(work)
        for key, value in work.env.items():
            monkeypatch.setenv(key, value)
        cache = Path(os.environ["MODELINV_CACHE"])
        before = snapshot(work.path, cache)
        code, out, err = cli(capsys, *args)
        after = snapshot(work.path, cache)
    finally:
        work.thaw()
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}; stderr: {err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out
    assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert after == before, f"created or changed: {sorted(set(after.items()) ^ set(before.items()))}"


@pytest.mark.parametrize(
    "name,contents",
    [("binary-config.yaml", b"\xff\xfe\x00\x81 binary"), ("bomb.yaml", ALIAS_BOMB.encode()), ("dup.yaml", ("seed: 1\n" + yaml.safe_dump(RUN)).encode())],
)
def test_refused_in_a_real_process(name, contents, tmp_path):
    """The console entry point, in its own process: exit code 2, one line on stderr, no traceback, no output directory."""
    config = tmp_path / name
    config.write_bytes(contents)
    proc = subprocess.run([sys.executable, "-m", "modelinv.cli", "run", config, "--out", tmp_path / "out"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


# --- fuzzing the config loader -------------------------------------------------------------------------------------

FUZZ_DIR = Path(tempfile.mkdtemp(prefix="modelinv-fuzz-"))
FIELD_NAMES = sorted(
    {"seed", "seeds", "data", "source", "target", "evaluator", "access", "attack", "attacks", "defense", "defenses", "sweep", "num_targets", "per_class"}
    | {"metrics", "train", "epochs", "lr", "arch", "args", "weights", "observe", "layer", "params", "name", "values", "param", "image_size", "split"}
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["lenet", "mnist5k", "features", "relu2", "inverse-net", "rmle", "laplace-noise", "psnr", "1e23", "!!", "&a", "*a"]),
)
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), inner, max_size=5), max_leaves=25
)
TOKENS = ["seed", "attack", "target", "name", ": ", "- ", "\n", "  ", "[", "]", "{", "}", ",", "&a ", "*a", "&b ", "*b", "<<: ", "!!python/object ", "!!binary ", "---\n", "'", '"', "#", "1e23", "true", "~", ".inf", "\x00", "\t"]


def load_any(text: str | bytes) -> None:
    """Write `text` to a file and load it as every config schema; anything but a config or a ModelinvError fails the test."""
    from modelinv.errors import ModelinvError
    from modelinv.experiment.config import ExperimentConfig, TradeoffConfig, load_config
    from modelinv.experiment.grid import GridConfig

    path = FUZZ_DIR / "fuzz.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    for schema in (ExperimentConfig, GridConfig, TradeoffConfig):
        try:
            cfg = load_config(path, schema)
            if hasattr(cfg, "experiments"):
                cfg.experiments()
        except ModelinvError as err:
            assert "\n" not in " ".join(str(err).split())


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@FUZZ
@given(st.text(max_size=400))
def test_fuzz_config_text(text):
    load_any(text)


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_config_bytes(data):
    load_any(data)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_fuzz_config_yaml_tokens(tokens):
    load_any("".join(tokens))


@FUZZ
@given(documents)
def test_fuzz_config_structures(document):
    load_any(yaml.safe_dump(document))


@FUZZ
@given(st.sampled_from(["seed", "num_targets", "per_class", "metrics", "data", "target", "access", "attack", "evaluator", "defense", "attacker_data"]), documents)
def test_fuzz_config_one_field(field_name, value):
    load_any(yaml.safe_dump({**RUN, field_name: value}))
    load_any(yaml.safe_dump({**GRID, field_name: value}))
