"""Checksummed caches: every stored model records its weights' SHA-256 and loading verifies it.

The four corruptions of issue 18 (16 flipped exponent bits, zeroed weights, another LeNet's weights, a
truncated file) are each detected every time; the cache warns in one line naming the file, retrains, and
the reloaded model equals a fresh training. A user's own weights are checked against an expected hash or
their sidecar metadata (an error, exit 2). Every test uses its own temporary cache directory.
"""

import hashlib
import json
import struct
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import save_file

from modelinv.errors import ModelinvError
from modelinv.models import build_model
from modelinv.models.store import (
    CONFIG,
    INDEX,
    ON_CORRUPT_ENV,
    WEIGHTS,
    CorruptCheckpoint,
    ModelRequest,
    cached,
    file_sha256,
    load_checkpoint,
    load_weights,
    train_or_load,
    verify_weights,
)
from modelinv.seeding import seeded


@pytest.fixture(scope="module")
def tiny(mnist_splits):
    return mnist_splits.private_train.subset(torch.arange(256))


def lenet_request(data, seed=0):
    return ModelRequest(
        role="target", arch="lenet", input_shape=data.input_shape, num_classes=data.num_classes,
        data_digest=data.digest(), seed=seed, train={"epochs": 1, "augment_shift": 0, "batch_size": 64},
    )


@pytest.fixture(scope="module")
def fresh(tiny, tmp_path_factory):
    """A LeNet trained from scratch into a cache of its own: the reference every retrain must equal."""
    model, meta = train_or_load(lenet_request(tiny), tiny, cache_dir=tmp_path_factory.mktemp("fresh"))
    assert not meta["cached"]
    return {k: v.clone() for k, v in model.state_dict().items()}, meta["sha256"]


def header(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), 8 + n


def flip_exponent_bits(path, tensor_index=0, count=16):
    """Flip the top exponent bit of `count` float32 values of one tensor (bit 30: byte 3 of each little-endian value)."""
    head, start = header(path)
    names = sorted(k for k in head if k != "__metadata__")
    begin, _ = head[names[tensor_index % len(names)]]["data_offsets"]
    raw = bytearray(path.read_bytes())
    for i in range(count):
        raw[start + begin + 4 * i + 3] ^= 0x40
    path.write_bytes(bytes(raw))


def zero_weights(path):
    head, start = header(path)
    raw = path.read_bytes()
    path.write_bytes(raw[:start] + bytes(len(raw) - start))


def other_lenets_weights(path):
    with seeded(1234):  # another initialisation, the test process's random state kept
        other = build_model("lenet", (1, 28, 28), 10)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path), metadata={"format": "modelinv-checkpoint/1"})


def truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


CORRUPTIONS = {"flip-16-exponent-bits": flip_exponent_bits, "zeroed": zero_weights, "another-lenet": other_lenets_weights, "truncated": truncate}


def same_weights(model, reference):
    return model.state_dict().keys() == reference.keys() and all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupted_cached_lenet_is_detected_retrained_and_overwritten(corruption, tiny, fresh, tmp_path, capfd):
    reference, reference_sha = fresh
    model, meta = train_or_load(lenet_request(tiny), tiny, cache_dir=tmp_path)
    assert not meta["cached"] and same_weights(model, reference)
    weights = tmp_path / "models" / f"lenet-{lenet_request(tiny).key()}" / "model" / WEIGHTS
    assert json.loads((weights.parent / CONFIG).read_text())["weights_sha256"] == file_sha256(weights) == meta["sha256"] == reference_sha
    CORRUPTIONS[corruption](weights)
    assert file_sha256(weights) != reference_sha
    capfd.readouterr()

    model, meta = train_or_load(lenet_request(tiny), tiny, cache_dir=tmp_path)
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warning: corrupt cache entry, retraining it" in err[0] and str(weights) in err[0], err
    assert not meta["cached"] and same_weights(model, reference) and meta["sha256"] == reference_sha
    assert file_sha256(weights) == reference_sha  # the entry was overwritten

    model, meta = train_or_load(lenet_request(tiny), tiny, cache_dir=tmp_path)
    assert meta["cached"] and same_weights(model, reference) and capfd.readouterr().err == ""


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_every_corruption_is_detected_every_time(corruption, tiny, tmp_path):
    """Repeated on every tensor of the file (for the bit flips) and on fresh copies: never loaded silently."""
    train_or_load(lenet_request(tiny), tiny, cache_dir=tmp_path)
    directory = tmp_path / "models" / f"lenet-{lenet_request(tiny).key()}" / "model"
    pristine = (directory / WEIGHTS).read_bytes()
    tensors = len([k for k in header(directory / WEIGHTS)[0] if k != "__metadata__"])
    for i in range(tensors if corruption == "flip-16-exponent-bits" else 3):
        (directory / WEIGHTS).write_bytes(pristine)
        if corruption == "flip-16-exponent-bits":
            flip_exponent_bits(directory / WEIGHTS, tensor_index=i)
        else:
            CORRUPTIONS[corruption](directory / WEIGHTS)
        with pytest.raises(CorruptCheckpoint, match=f"corrupted checkpoint file {directory / WEIGHTS}") as err:
            load_checkpoint(directory)
        assert "\n" not in str(err.value)


def test_corruption_can_be_an_error_instead_of_a_retrain(tiny, tmp_path, monkeypatch):
    train_or_load(lenet_request(tiny), tiny, cache_dir=tmp_path)
    weights = tmp_path / "models" / f"lenet-{lenet_request(tiny).key()}" / "model" / WEIGHTS
    zero_weights(weights)
    monkeypatch.setenv(ON_CORRUPT_ENV, "error")
    with pytest.raises(CorruptCheckpoint, match=str(weights)):
        train_or_load(lenet_request(tiny), tiny, cache_dir=tmp_path)


def test_a_corrupt_gan_artifact_module_is_retrained(tmp_path, capfd):
    """Multi-module artifacts (a GAN's generator and discriminator) are checked module by module."""
    request = ModelRequest(role="gan", arch="mlp", input_shape=(4,), num_classes=2, data_digest="d", seed=5, args={"hidden": [3]})
    calls = []

    def produce():
        calls.append(1)
        return {"generator": build_model("mlp", (4,), 2, hidden=[3]), "discriminator": build_model("mlp", (4,), 2, hidden=[3])}, {}

    first, meta = cached(request, produce, tmp_path)
    assert set(meta["weights_sha256"]) == {"generator", "discriminator"}
    index = json.loads((tmp_path / "models" / f"mlp-{request.key()}" / INDEX).read_text())
    assert index["weights_sha256"] == meta["weights_sha256"]
    weights = tmp_path / "models" / f"mlp-{request.key()}" / "discriminator" / WEIGHTS
    flip_exponent_bits(weights, count=1)
    capfd.readouterr()
    again, meta2 = cached(request, produce, tmp_path)
    assert len(calls) == 2 and not meta2["cached"] and str(weights) in capfd.readouterr().err
    assert meta2["weights_sha256"] == meta["weights_sha256"]
    assert all(same_weights(again[k], first[k].state_dict()) for k in first)


def test_an_entry_without_a_recorded_hash_loads_and_gets_one(tiny, fresh, tmp_path, capfd):
    """Entries written before checksums: loaded (unverified, a one-line note), the hash recorded for next time."""
    train_or_load(lenet_request(tiny), tiny, cache_dir=tmp_path)
    config_path = tmp_path / "models" / f"lenet-{lenet_request(tiny).key()}" / "model" / CONFIG
    config = json.loads(config_path.read_text())
    del config["weights_sha256"]
    config_path.write_text(json.dumps(config))
    capfd.readouterr()
    model, meta = train_or_load(lenet_request(tiny), tiny, cache_dir=tmp_path)
    err = capfd.readouterr().err.strip().splitlines()
    assert meta["cached"] and same_weights(model, fresh[0]) and meta["sha256"] == fresh[1]
    assert len(err) == 1 and "no recorded SHA-256" in err[0] and "recorded now" in err[0]
    assert json.loads(config_path.read_text())["weights_sha256"] == fresh[1]
    train_or_load(lenet_request(tiny), tiny, cache_dir=tmp_path)
    assert capfd.readouterr().err == ""


def test_a_users_weights_are_checked_against_an_expected_hash_and_sidecars(tmp_path):
    model = build_model("lenet", (1, 28, 28), 10)
    path = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert verify_weights(path) == digest  # no hash available: unverified, hash returned
    assert verify_weights(path, digest.upper()) == digest
    assert load_weights(path, build_model("lenet", (1, 28, 28), 10), "lenet", expected_sha256=digest) == digest
    with pytest.raises(ModelinvError, match=f"weights file {path} is corrupt or not the expected file") as err:
        verify_weights(path, "0" * 64)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelinvError, match="not 64 hex digits"):
        verify_weights(path, "abc")
    (tmp_path / "mine.safetensors.sha256").write_text(f"{digest}  mine.safetensors\n")
    assert load_weights(path, build_model("lenet", (1, 28, 28), 10), "lenet") == digest
    flip_exponent_bits(path, count=16)
    with pytest.raises(ModelinvError, match="mine.safetensors.sha256 records"):
        load_weights(path, build_model("lenet", (1, 28, 28), 10), "lenet")
    (tmp_path / "mine.safetensors.sha256").write_text("not a hash\n")
    with pytest.raises(ModelinvError, match="does not start with a SHA-256"):
        verify_weights(path)


def test_a_checkpoints_own_weights_file_given_as_a_model_is_checked_against_its_model_json(tiny, tmp_path):
    _, meta = train_or_load(lenet_request(tiny), tiny, cache_dir=tmp_path)
    weights = tmp_path / "models" / f"lenet-{lenet_request(tiny).key()}" / "model" / WEIGHTS
    assert verify_weights(weights) == meta["sha256"]
    truncate(weights)
    with pytest.raises(ModelinvError, match=f"{CONFIG} records"):
        load_weights(weights, build_model("lenet", (1, 28, 28), 10), "lenet")


def test_the_cache_key_includes_dtype_determinism_and_device_type_without_changing_default_keys(tiny):
    request = lenet_request(tiny)
    old_style = {k: v for k, v in asdict(request).items() if k not in ("defense", "dtype", "deterministic", "device")}
    assert request.key() == hashlib.sha256(json.dumps(old_style, sort_keys=True, default=list).encode()).hexdigest()[:20]
    assert (request.dtype, request.deterministic) == ("float32", False)
    keys = {
        request.key(),
        ModelRequest(**{**asdict(request), "dtype": "float64"}).key(),
        ModelRequest(**{**asdict(request), "deterministic": True}).key(),
        ModelRequest(**{**asdict(request), "threads": request.threads + 1}).key(),
        ModelRequest(**{**asdict(request), "device": "cuda"}).key(),
    }
    assert len(keys) == 5
    assert ModelRequest(**{**asdict(request), "device": "cuda:1"}).key() == ModelRequest(**{**asdict(request), "device": "cuda"}).key()
