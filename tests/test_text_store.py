"""Text targets live in the one model cache (modelinv.models.store): same layout, same SHA-256 verification, the
thread count in the key, a corrupt entry warned about in one line and retrained; and each text target's own
training defaults replace the shared (image) ones it is left at. Every cache test uses its own empty cache."""

import json
from dataclasses import asdict

import pytest
import torch

from helpers import own_model_cache
from modelinv.data import load
from modelinv.data.text import text_splits
from modelinv.models.store import CONFIG, INDEX, WEIGHTS, ModelRequest, file_sha256
from modelinv.models.trainer import TrainConfig
from modelinv.text import build_text_target
from modelinv.text.targets import CHAR_LM_TRAIN, ENCODER_TRAIN, train_settings

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def splits():
    return text_splits(load("records:60"), seed=0)


TINY = {
    "text-encoder": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 300},
    "char-lm": {"dim": 8, "hidden": 16, "repetitions": [2], "reference_canaries": 1},
}


def build(arch, splits):
    return build_text_target(arch, TINY[arch], TrainConfig(epochs=1), splits.private_train, splits.private_test, seed=0)


def flip_bits(path):
    raw = bytearray(path.read_bytes())
    for i in range(1, 17):  # 16 bytes near the end: inside the last tensor's data
        raw[-4 * i] ^= 0x40
    path.write_bytes(bytes(raw))


def truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def same(module, reference):
    return module.state_dict().keys() == reference.keys() and all(torch.equal(v, reference[k]) for k, v in module.state_dict().items())


@pytest.mark.parametrize("corruption", [flip_bits, truncate], ids=["flip-16-bits", "truncated"])
@pytest.mark.parametrize("arch", sorted(TINY))
def test_a_corrupted_cached_text_model_is_detected_and_retrained(arch, corruption, splits, tmp_path, capfd):
    with own_model_cache(tmp_path):
        first = build(arch, splits)
        assert not first.meta["cached"]
        reference, tokens = state(first.model), first.tokenizer.tokens
        (directory,) = (tmp_path / "models").iterdir()  # models/<arch>-<key>/model/, as for image models
        assert directory.name == f"{arch}-{json.loads((directory / INDEX).read_text())['request_key']}"
        weights = directory / "model" / WEIGHTS
        assert first.meta["path"] == str(directory / "model")
        assert json.loads((weights.parent / CONFIG).read_text())["weights_sha256"] == file_sha256(weights) == first.meta["sha256"]

        corruption(weights)
        capfd.readouterr()
        again = build(arch, splits)
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "warning: corrupt cache entry, retraining it" in err[0] and str(weights) in err[0], err
        assert not again.meta["cached"] and same(again.model, reference) and again.meta["sha256"] == first.meta["sha256"]
        assert file_sha256(weights) == first.meta["sha256"]  # the entry was overwritten

        third = build(arch, splits)
        assert third.meta["cached"] and same(third.model, reference) and third.tokenizer.tokens == tokens
        assert capfd.readouterr().err == ""


def test_text_models_are_keyed_like_image_models_with_the_thread_count(splits, tmp_path):
    with own_model_cache(tmp_path):
        target = build("char-lm", splits)
        entries = list((tmp_path / "models").iterdir())
        assert [p.name.split("-")[:2] for p in entries] == [["char", "lm"]] and not (tmp_path / "text-models").exists()
        meta = json.loads((entries[0] / INDEX).read_text())
        request = ModelRequest(**{**meta["request"], "input_shape": tuple(meta["request"]["input_shape"])})
        assert request.threads == 1 and entries[0].name == f"char-lm-{request.key()}"
        assert ModelRequest(**{**asdict(request), "threads": 2}).key() != request.key()
        assert target.meta["train"] == {**TrainConfig(epochs=1).model_dump(), "lr": CHAR_LM_TRAIN["lr"], "batch_size": CHAR_LM_TRAIN["batch_size"]}


def test_each_text_target_has_its_own_training_defaults():
    shared = TrainConfig()
    assert (shared.epochs, shared.lr, shared.batch_size) == (40, 0.002, 64)  # the image targets' defaults are unchanged
    lm = train_settings("char-lm", shared)
    assert (lm.epochs, lm.lr, lm.batch_size) == (15, 0.01, 16) == tuple(CHAR_LM_TRAIN[k] for k in ("epochs", "lr", "batch_size"))
    encoder = train_settings("text-encoder", shared)
    assert encoder.model_dump() == {**shared.model_dump(), **ENCODER_TRAIN}
    given = train_settings("char-lm", TrainConfig(epochs=3, lr=0.05, weight_decay=0.1))
    assert (given.epochs, given.lr, given.batch_size, given.weight_decay) == (3, 0.05, 16, 0.1)
    assert train_settings("minilm", shared) == shared  # nothing trained, no defaults of its own
