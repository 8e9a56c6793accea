"""Data: bundled datasets and file sources behind one `load(source)`, and the threat-model splits.

A source is a bundled dataset name (`mnist5k`, `digits`, `breast-cancer`) or a file source `PREFIX:PATH`
(`idx:`, `npz:`, `folder:`, `csv:`), or the synthetic `planted:STRENGTH`. Images are float32 (N, C, H, W) in [0, 1]; labels index `classes`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modelinv.data import planted, text  # noqa: F401  (registration)
from modelinv.data.bundled import DATASETS
from modelinv.data.files import FILE_SOURCES
from modelinv.data.splits import SPLITS, make_splits
from modelinv.data.transforms import resize, to_channels
from modelinv.data.types import Dataset, ImageDataset, Splits, TabularDataset
from modelinv.errors import ModelinvError


def _known_sources() -> str:
    usages = ", ".join(FILE_SOURCES.info(prefix)["usage"] for prefix in FILE_SOURCES)
    return f"datasets: {', '.join(DATASETS)}; files: {usages}"


def load(source: str, *, image_size: int | None = None, label_column: str | None = None) -> Dataset:
    """The dataset named by `source`, its images resized to `image_size` x `image_size` if given.

    `label_column` names the class column of a `csv:` source and applies to nothing else.
    """
    prefix, colon, path = source.partition(":")
    if colon and prefix in FILE_SOURCES:
        if not path:
            raise ModelinvError(f"data source '{source}' names no file (use {FILE_SOURCES.info(prefix)['usage']})")
        loader, info, args = FILE_SOURCES.get(prefix), FILE_SOURCES.info(prefix), (path,)
    elif source in DATASETS:
        loader, info, args = DATASETS.get(source), DATASETS.info(source), ()
    else:
        raise ModelinvError(f"unknown data source '{source}' ({_known_sources()})")
    if image_size is not None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ModelinvError(f"image_size must be a positive integer, got {image_size!r}")
        if info["kind"] != "image":
            raise ModelinvError(f"image_size applies to image sources, but '{source}' is {info['kind']}")
    options = info.get("options", ())
    if label_column is not None and "label_column" not in options:
        raise ModelinvError(f"label_column applies to csv: sources only, not '{source}'")
    given = {"image_size": image_size, "label_column": label_column}
    data = loader(*args, **{option: given[option] for option in options})
    if image_size is None or data.input_shape[1:] == (image_size, image_size):
        return data
    return replace(data, x=resize(data.x, image_size), name=f"{data.name}@{image_size}x{image_size}")


def describe_datasets() -> list[dict[str, Any]]:
    """One row per bundled dataset and per file-source prefix: name, kind ("image"|"tabular"), summary, shape if known."""
    rows = [DATASETS.info(name) for name in DATASETS]
    for prefix in FILE_SOURCES:
        info = FILE_SOURCES.info(prefix)
        rows.append({"name": info["usage"], "kind": info["kind"], "summary": info["summary"], "shape": None, "options": list(info["options"])})
    return rows


__all__ = [
    "DATASETS",
    "FILE_SOURCES",
    "SPLITS",
    "Dataset",
    "ImageDataset",
    "Splits",
    "TabularDataset",
    "describe_datasets",
    "load",
    "make_splits",
    "resize",
    "to_channels",
]
