"""The `glyphs` source (printed characters rendered from matplotlib's fonts) and the judge's own private split."""

import pytest
import torch

from modelinv.data import describe_datasets, glyphs, load, make_splits
from modelinv.data.types import ImageDataset, TabularDataset
from modelinv.errors import ModelinvError

pytestmark = pytest.mark.usefixtures("one_thread")


def rows(data):
    """The images of `data` as a set of byte strings: what "sharing an image" means."""
    return {row.numpy().tobytes() for row in data.x.flatten(1)}


def fails(fn, *needles):
    with pytest.raises(ModelinvError) as err:
        fn()
    for needle in needles:
        assert needle in str(err.value)


def test_glyph_classes():
    classes = glyphs.CLASSES
    assert len(classes) >= 40 and len(set(classes)) == len(classes)
    assert all(len(c) == 1 and c.isalnum() for c in classes)
    assert not set(glyphs.DROPPED) & set(classes)
    assert [classes[i] for i in glyphs.UPPER_CLASSES] == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    # no class left whose upper-case twin is also a class, but only those in the same shape as theirs
    assert not {c for c in classes if c.islower() and c.upper() in "COSVWXZ"}


def test_glyphs_render_mnist_like_images():
    data = load("glyphs:12")
    assert isinstance(data, ImageDataset) and data.name == "glyphs:12"
    assert data.x.shape == (12 * len(glyphs.CLASSES), 1, 28, 28) and data.x.dtype == torch.float32
    assert data.classes == glyphs.CLASSES and data.y.bincount().tolist() == [12] * len(glyphs.CLASSES)
    assert float(data.x.min()) == 0.0 and float(data.x.max()) == 1.0
    assert torch.equal(data.x, (data.x * 255).round() / 255)  # 256 grey levels
    border = torch.cat([data.x[..., :2, :].flatten(1), data.x[..., -2:, :].flatten(1)], 1)
    assert float(border.mean()) < 0.05 < float(data.x.mean())  # ink bright, on black, centred
    assert len(rows(data)) == len(data)  # every variant differs


def test_glyphs_are_deterministic():
    first = load("glyphs:8").digest()
    glyphs._CACHE.clear()
    glyphs.glyph_masks.cache_clear()
    assert load("glyphs:8").digest() == first  # rendered again from the fonts: the same bytes
    assert glyphs.glyphs(8, seed=glyphs.SEED + 1).digest() != first
    assert load("glyphs:9").digest() != first


def test_glyph_sources_are_listed_and_checked():
    listed = {row["name"]: row for row in describe_datasets()}
    assert listed["glyphs"]["kind"] == listed["glyphs:N"]["kind"] == "image"
    assert listed["glyphs"]["classes"] == len(glyphs.CLASSES) and tuple(listed["glyphs"]["shape"]) == (1, 28, 28)
    for bad in ("glyphs:x", "glyphs:1", "glyphs:0", "glyphs:-3", "glyphs:2.5", f"glyphs:{glyphs.MAX_PER_CLASS + 1}"):
        fails(lambda: load(bad), "glyphs:N")
    fails(lambda: load("glyphs:"), "glyphs:N")


def test_letters_are_the_glyph_letters_without_digits():
    full, letters = load("glyphs:3"), load("letters:3")
    assert letters.classes == glyphs.LETTERS and not set(letters.classes) & set("123456789")
    assert len(letters) == 3 * len(glyphs.LETTERS) and letters.name == "letters:3"
    for k, name in enumerate(letters.classes):  # the same images as the glyphs of that character
        assert torch.equal(letters.x[letters.y == k], full.x[full.y == glyphs.CLASSES.index(name)])
    assert {row["name"] for row in describe_datasets()} >= {"letters", "letters:N"}
    fails(lambda: load("letters:1"), "glyphs:N")


def test_default_glyphs():
    data = load("glyphs")
    assert data.name == "glyphs" and len(data) == glyphs.PER_CLASS * len(glyphs.CLASSES)
    assert load(f"glyphs:{glyphs.PER_CLASS}").digest() == data.digest()


def test_letters_private_digits_and_lower_case_public():
    data = load("glyphs:20")
    s = make_splits("class-disjoint", data, seed=0, private_classes=glyphs.UPPER_CLASSES)
    assert make_splits("class-disjoint", data, seed=0).digests() == s.digests()  # the split's default: the letters
    upper = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert s.private_train.classes == s.private_test.classes == s.evaluator_train.classes == upper
    assert not set(s.public.classes) & set(upper)
    assert set(s.public.classes) | set(upper) == set(data.classes)
    assert all(c.isdigit() or c.islower() for c in s.public.classes)
    private = rows(s.private_train) | rows(s.private_test) | rows(s.evaluator_train)
    assert not private & rows(s.public)
    assert len(private) + len(s.public) == len(data)


@pytest.mark.parametrize("kind", ["same-distribution", "class-disjoint", "cross-domain"])
def test_the_judge_learns_from_private_images_the_target_never_saw(kind):
    data = load("glyphs:20")
    public = load("glyphs:4") if kind == "cross-domain" else None
    s = make_splits(kind, data, seed=1, public_data=public)
    train, judge, test = rows(s.private_train), rows(s.evaluator_train), rows(s.private_test)
    assert not train & judge and not judge & test and not train & test
    assert s.evaluator_train.classes == s.private_train.classes
    # stratified: by default half of each class's training pool (what the 20% test part leaves) goes to the judge
    k = s.private_train.num_classes
    pool = len(s.private_train) // k + len(s.evaluator_train) // k
    assert s.evaluator_train.y.bincount().tolist() == [round(pool / 2)] * k
    assert s.private_train.y.bincount().tolist() == [pool - round(pool / 2)] * k
    assert s.evaluator_train.name.endswith("/evaluator-train")
    assert make_splits(kind, data, seed=1, public_data=public).digests() == s.digests()
    other = make_splits(kind, data, seed=1, public_data=public, evaluator_fraction=0.25)
    assert other.private_test.digest() == s.private_test.digest()  # the test part is drawn before the judge's
    assert other.evaluator_train.y.bincount().tolist() == [round(pool / 4)] * k
    assert other.digests()["evaluator_train"] != s.digests()["evaluator_train"]


def test_a_judge_of_all_classes_learns_the_public_ones_from_images_the_attacker_never_gets():
    data = load("glyphs:20")
    s = make_splits("class-disjoint", data, seed=1)
    a = make_splits("class-disjoint", data, seed=1, judge_classes="all")
    # the private parts are the same as by default; the attacker keeps the other half of the public pool
    for part in ("private_train", "private_test"):
        assert getattr(a, part).digest() == getattr(s, part).digest()
    assert rows(a.public) < rows(s.public) and len(a.public) == len(s.public) // 2
    k, p = s.private_train.num_classes, s.public.num_classes
    assert a.evaluator_train.classes == s.private_train.classes + s.public.classes
    assert a.evaluator_train.y.bincount().tolist() == s.evaluator_train.y.bincount().tolist() + [len(s.public) // p // 2] * p
    held = a.evaluator_train.subset(a.evaluator_train.y >= k)
    assert rows(held) == rows(s.public) - rows(a.public)  # the judge's public images: exactly those held out from the attacker
    assert rows(a.evaluator_train.subset(a.evaluator_train.y < k)) == rows(s.evaluator_train)
    # each public image keeps its class, shifted past the private ones
    names = {row.numpy().tobytes(): s.public.classes[int(y)] for row, y in zip(s.public.x.flatten(1), s.public.y)}
    assert all(names[row.numpy().tobytes()] == a.evaluator_train.classes[int(y)] for row, y in zip(held.x.flatten(1), held.y))
    fails(lambda: make_splits("same-distribution", data, seed=1, judge_classes="all"), "judge_classes", "class-disjoint")
    fails(lambda: make_splits("class-disjoint", data, seed=1, judge_classes="some"), "judge_classes")


def test_judge_classes_all_changes_the_run_id_and_the_default_keeps_old_ones():
    from modelinv.experiment.config import ExperimentConfig
    from modelinv.experiment.grid import run_id

    base = {"data": {"source": "mnist5k", "split": "class-disjoint"}, "attack": {"name": "mi-face"}}
    default = ExperimentConfig.model_validate(base)
    explicit = ExperimentConfig.model_validate({**base, "data": {**base["data"], "judge_classes": "private"}})
    every = ExperimentConfig.model_validate({**base, "data": {**base["data"], "judge_classes": "all"}})
    assert run_id(default) == run_id(explicit) != run_id(every)
    # the default dumps as before the field existed (stored configs and run ids stay valid); "all" is written out
    assert "judge_classes" not in default.model_dump(mode="json")["data"] and every.model_dump(mode="json")["data"]["judge_classes"] == "all"


def test_evaluator_fraction_is_checked_and_tabular_data_keeps_one_training_set():
    data = load("glyphs:4")
    for bad in (0, 1, 1.5, -0.1, True):
        fails(lambda: make_splits("same-distribution", data, seed=0, evaluator_fraction=bad), "evaluator_fraction")
    fails(lambda: make_splits("same-distribution", load("glyphs:3"), seed=0), "evaluator_fraction", "1 sample")
    table = TabularDataset(x=torch.rand(40, 3), y=torch.arange(2).repeat(20), classes=("a", "b"), name="t", columns=("u", "v", "w"))
    s = make_splits("same-distribution", table, seed=0)
    assert s.evaluator_train is s.private_train


def test_lenet_learns_a_few_letters_quickly():
    from modelinv.models import build_model
    from modelinv.models.trainer import TrainConfig, accuracy, train_classifier

    letters = glyphs.UPPER_CLASSES[:10]
    s = make_splits("class-disjoint", load("glyphs:100"), seed=0, private_classes=letters)
    assert len(s.private_train) == len(s.evaluator_train) == 400 and len(s.private_test) == 200
    net = build_model("lenet", s.private_train.input_shape, s.private_train.num_classes)
    train_classifier(net, s.private_train, TrainConfig(epochs=10, batch_size=32, lr=3e-3, val_fraction=0.1), seed=0)
    assert accuracy(net, s.private_test) > 0.5  # chance: 0.1; about 0.7-0.8 measured over seeds 0-2
