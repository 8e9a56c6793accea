"""Checkpoints: safetensors + JSON round trip, a cache keyed by the request, clear errors on corruption."""

import json

import pytest
import torch

from modelinv.errors import ModelinvError
from modelinv.models import build_model
from modelinv.models.store import CONFIG, WEIGHTS, ModelRequest, load_checkpoint, save_checkpoint, train_or_load


def _request(data, **train):
    return ModelRequest(
        role="target", arch="mlp", input_shape=data.input_shape, num_classes=data.num_classes,
        data_digest=data.digest(), seed=3, args={"hidden": [32]}, train={"epochs": 2, **train},
    )


@pytest.fixture(scope="module")
def tiny(mnist_splits):
    return mnist_splits.private_train.subset(torch.arange(300))


def test_round_trip(tmp_path):
    net = build_model("lenet", (1, 28, 28), 10)
    save_checkpoint(tmp_path / "ck", net, {"metrics": {"val_acc": 0.5}})
    loaded, meta = load_checkpoint(tmp_path / "ck")
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(net.eval()(x), loaded(x))
    assert meta["arch"] == "lenet" and meta["metrics"]["val_acc"] == 0.5 and "torch" in meta["versions"]


def test_second_request_loads_from_cache_with_identical_weights(tiny, tmp_path):
    first, meta1 = train_or_load(_request(tiny), tiny, cache_dir=tmp_path)
    second, meta2 = train_or_load(_request(tiny), tiny, cache_dir=tmp_path)
    assert (meta1["cached"], meta2["cached"]) == (False, True)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    other, meta3 = train_or_load(_request(tiny, lr=2e-3), tiny, cache_dir=tmp_path)
    assert not meta3["cached"] and meta3["path"] != meta1["path"]


def test_same_request_trains_identically_from_scratch(tiny, tmp_path):
    a, _ = train_or_load(_request(tiny), tiny, cache_dir=tmp_path / "a")
    b, _ = train_or_load(_request(tiny), tiny, cache_dir=tmp_path / "b")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_corrupted_weights_name_the_file(tmp_path):
    save_checkpoint(tmp_path / "ck", build_model("lenet", (1, 28, 28), 10), {})
    (tmp_path / "ck" / WEIGHTS).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelinvError, match=f"corrupted checkpoint file .*{WEIGHTS}") as err:
        load_checkpoint(tmp_path / "ck")
    assert "\n" not in str(err.value)


def test_truncated_weights_and_bad_json_name_the_file(tmp_path):
    save_checkpoint(tmp_path / "ck", build_model("lenet", (1, 28, 28), 10), {})
    weights = tmp_path / "ck" / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelinvError, match=WEIGHTS):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / CONFIG).write_text("{not json")
    with pytest.raises(ModelinvError, match=f"corrupted checkpoint file .*{CONFIG}"):
        load_checkpoint(tmp_path / "ck")


def test_weights_of_another_architecture_are_refused(tmp_path):
    save_checkpoint(tmp_path / "ck", build_model("lenet", (1, 28, 28), 10), {})
    config = json.loads((tmp_path / "ck" / CONFIG).read_text())
    (tmp_path / "ck" / CONFIG).write_text(json.dumps({**config, "arch": "cnn-split"}))
    with pytest.raises(ModelinvError, match="does not match architecture 'cnn-split'"):
        load_checkpoint(tmp_path / "ck")


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ModelinvError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nothing")
