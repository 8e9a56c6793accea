"""Datasets read from the user's files, chosen by a prefix: `idx:`, `npz:`, `folder:` (images) and `csv:` (tabular).

Every problem with a file is reported as a one-line ModelinvError naming the file (and the array, column or row):
decoding, zip and gzip errors, sizes beyond the memory budget (checked from headers, before allocating), data
that would need unpickling (refused, never unpickled), one-class label sets, and CSV cells that do not fit
their column (a stray word, `inf` or a NUL byte in a numeric column).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modelinv.data.transforms import resize, to_channels
from modelinv.data.types import ImageDataset, TabularDataset
from modelinv.errors import ModelinvError
from modelinv.registry import Registry
from modelinv.validation import check_allocation, memory_budget

FILE_SOURCES: Registry = Registry("file source")

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".pgm", ".png")
GREY_MODES = {"1", "L", "LA"}
WIDE_GREY_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}  # 16-bit grey, e.g. 16-bit PNG
MISSING = {"", "?", "na", "n/a", "nan", "null"}  # CSV cells read as missing values (case-insensitive)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _file(path: str) -> Path:
    found = Path(path).expanduser()
    if found.is_dir():
        raise ModelinvError(f"data file expected but {path} is a folder")
    if not found.is_file():
        raise ModelinvError(f"data file not found: {path}")
    return found


def _read_bytes(path: Path) -> bytes:
    """The bytes of `path`, decompressed if it is gzipped (recognised by its magic bytes, not its name), within the memory budget."""
    try:
        check_allocation(path.stat().st_size, f"reading {path}")
        raw = path.read_bytes()
        if raw[:2] != b"\x1f\x8b":
            return raw
        limit = memory_budget()
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
            data = f.read(limit + 1)  # a gzip bomb stops at the budget
    except (OSError, EOFError, zlib.error) as err:
        raise ModelinvError(f"cannot read {path}: {_one_line(err)}") from None
    if len(data) > limit:
        raise ModelinvError(f"{path} decompresses to more than the memory budget of {limit / 2**30:,.1f} GiB (set MODELINV_MEMORY_BUDGET_GB to change it)")
    return data


def _labels(values: np.ndarray) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Label indices into the sorted distinct `values` (numbers sorted numerically), and those values as names."""
    distinct, index = np.unique(values, return_inverse=True)
    names = tuple(str(v.item() if isinstance(v, np.generic) else v) for v in distinct)
    return torch.from_numpy(index.reshape(-1).astype(np.int64)), names


def _two_classes(classes: tuple[str, ...], where: str) -> None:
    """Refuse labels of one class: a classifier trained on them learns nothing, and every attack 'succeeds'."""
    if len(classes) < 2:
        raise ModelinvError(f"{where} holds only one class ('{classes[0]}'); a classifier needs at least two")


# --- idx: ---------------------------------------------------------------------------------------------------------


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX array of unsigned bytes with `ndim` dimensions (magic 0x0000080N, big-endian int32 sizes)."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        kind = "images (magic 0x00000803)" if ndim == 3 else "labels (magic 0x00000801)"
        raise ModelinvError(f"{path}: bad IDX magic 0x{raw[:4].hex()}; expected an IDX file of {kind}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ModelinvError(f"{path}: IDX header is truncated")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if len(raw) - header != math.prod(shape):
        raise ModelinvError(f"{path}: IDX header announces shape {shape} but the file holds {len(raw) - header} data bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _labels_beside(images: Path) -> Path:
    """The labels file named like the images file: train-images-idx3-ubyte[.gz] -> train-labels-idx1-ubyte[.gz]."""
    name = re.sub(r"images([-.])idx3-ubyte", r"labels\1idx1-ubyte", images.name)
    if name == images.name:
        raise ModelinvError(f"cannot tell the labels file of {images}: name it explicitly as idx:IMAGES,LABELS")
    labels = images.with_name(name)
    if not labels.is_file():
        raise ModelinvError(f"data file not found: {labels} (the labels of {images.name}; or write idx:IMAGES,LABELS)")
    return labels


@FILE_SOURCES.register("idx", kind="image", usage="idx:IMAGES[,LABELS]", options=())
def read_idx(spec: str) -> ImageDataset:
    """MNIST-family IDX files (MNIST, Fashion-MNIST, EMNIST), gzipped or not; labels beside the images or after a comma.

    Images are read as stored (EMNIST's are transposed in its files).
    """
    images_arg, _, labels_arg = spec.partition(",")
    images_path = _file(images_arg)
    images = _read_idx(images_path, 3)
    labels_path = _file(labels_arg) if labels_arg else _labels_beside(images_path)
    labels = _read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise ModelinvError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    if len(images) == 0:
        raise ModelinvError(f"{images_path} holds no images")
    y, classes = _labels(labels)
    _two_classes(classes, f"labels file {labels_path}")
    check_allocation(images.size * 4, f"the images of {images_path} as float32")
    x = torch.from_numpy(images.copy()).unsqueeze(1).to(torch.float32).div_(255.0)
    return ImageDataset(x=x, y=y, classes=classes, name=f"idx:{images_path.name}")


# --- npz: ---------------------------------------------------------------------------------------------------------


def _image_tensor(x: np.ndarray, what: str) -> torch.Tensor:
    """Images (N, C, H, W) float32 in [0, 1] from (N, H, W), (N, C, H, W) or (N, H, W, C), uint8 or float in [0, 1]."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] in (1, 3):
        pass
    elif x.ndim == 4 and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    else:
        raise ModelinvError(f"{what} has shape {x.shape}; expected (N, H, W), (N, C, H, W) or (N, H, W, C) with C 1 or 3")
    if len(x) == 0:
        raise ModelinvError(f"{what} holds no images")
    check_allocation(x.size * 4, f"{what} as float32")
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32).div_(255.0)
    if not np.issubdtype(x.dtype, np.floating):
        raise ModelinvError(f"{what} has dtype {x.dtype}; expected uint8 (0..255) or float in [0, 1]")
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if not bool(torch.isfinite(t).all()) or float(t.min()) < 0.0 or float(t.max()) > 1.0:
        raise ModelinvError(f"{what} has float values outside [0, 1] (min {float(t.min()):g}, max {float(t.max()):g}); scale them or store uint8")
    return t


NPY_MAX_HEADER = 10_000
"""Largest .npy header read (NumPy's own default limit)."""
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError, NotImplementedError)
"""What reading a damaged, encrypted or oddly compressed zip member raises."""


def _npy_member(archive: zipfile.ZipFile, name: str, what: str) -> np.ndarray:
    """The .npy array stored as `name` in `archive`, its header checked before anything is allocated: the
    declared size must match the bytes stored and fit the memory budget, and object arrays (which only
    pickle can read) are refused without being read."""
    info = archive.getinfo(name)
    if not name.endswith(".npy"):
        raise ModelinvError(f"{what} is stored as '{name}', not as a .npy array; modelinv reads only .npy members (no pickles)")
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=NPY_MAX_HEADER)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=NPY_MAX_HEADER)
            else:
                raise ValueError(f"npy format version {version[0]}.{version[1]} is not supported (save it with numpy.savez)")
        except ValueError as err:
            raise ModelinvError(f"{what} is not a readable .npy array: {_one_line(err)}") from None
        if dtype.hasobject:
            raise ModelinvError(f"{what} holds Python objects (dtype {dtype}), which only unpickling could read; modelinv never unpickles data: store numbers")
        if any(d < 0 for d in shape):
            raise ModelinvError(f"{what} declares the impossible shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        stored = info.file_size - f.tell()
        if nbytes != stored:
            raise ModelinvError(f"{what} declares shape {shape} of {dtype} ({nbytes:,} bytes) but stores {stored:,} bytes: the file is truncated or corrupt")
        check_allocation(nbytes, what)
        buffer = np.empty(nbytes, dtype=np.uint8)
        got = f.readinto(memoryview(buffer)) if nbytes else 0
    if got != nbytes:
        raise ModelinvError(f"{what} is truncated: {got:,} of {nbytes:,} bytes")
    return buffer.view(dtype).reshape(shape, order="F" if fortran else "C")


def _npz_arrays(path: Path, keys: tuple[str, ...]) -> list[np.ndarray]:
    """The arrays `keys` of the .npz archive `path`, read with `_npy_member`; every error names the file."""
    try:
        archive = zipfile.ZipFile(path)
    except ZIP_ERRORS as err:
        try:
            with open(path, "rb") as f:
                head = f.read(6)
        except OSError:
            head = b""
        if head == b"\x93NUMPY":
            raise ModelinvError(f"{path} is a single .npy array, not an npz archive with arrays {' and '.join(repr(k) for k in keys)}") from None
        raise ModelinvError(f"cannot read {path} as an npz archive (a zip of .npy arrays): {_one_line(err)}") from None
    with archive:
        try:
            members = {name.removesuffix(".npy"): name for name in archive.namelist()}
            for key in keys:
                if key not in members:
                    raise ModelinvError(f"{path} has no array '{key}' (it has: {', '.join(sorted(members)) or 'none'})")
            return [_npy_member(archive, members[key], f"array '{key}' of {path}") for key in keys]
        except ZIP_ERRORS as err:
            raise ModelinvError(f"cannot read {path} as an npz archive (a zip of .npy arrays): {_one_line(err)}") from None


@FILE_SOURCES.register("npz", kind="image", usage="npz:PATH", options=())
def read_npz(spec: str) -> ImageDataset:
    """A NumPy .npz archive of images `x` ((N,H,W), (N,C,H,W) or (N,H,W,C); uint8 or float in [0, 1]) and labels `y`.

    Only .npy members are read, their headers checked first (size, no Python objects): nothing is unpickled."""
    path = _file(spec)
    x, y = _npz_arrays(path, ("x", "y"))
    images = _image_tensor(x, f"array 'x' of {path}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.dtype == np.bool_ or not (np.issubdtype(y.dtype, np.integer) or y.dtype.kind == "U"):
        raise ModelinvError(f"array 'y' of {path} has shape {y.shape} and dtype {y.dtype}; expected one integer or string label per image")
    if len(y) != len(images):
        raise ModelinvError(f"{path}: array 'x' holds {len(images)} images but array 'y' holds {len(y)} labels")
    labels, classes = _labels(y)
    _two_classes(classes, f"array 'y' of {path}")
    return ImageDataset(x=images, y=labels, classes=classes, name=f"npz:{path.name}")


# --- folder: ------------------------------------------------------------------------------------------------------


def _read_image(path: Path) -> tuple[torch.Tensor, bool]:
    """One image file as a float32 (C, H, W) tensor in [0, 1] (C = 1 for grey modes, else 3), and whether it is grey."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in WIDE_GREY_MODES:
                arr = np.clip(np.asarray(img, dtype=np.float32) / 65535.0, 0.0, 1.0)[None]
            elif img.mode in GREY_MODES:
                arr = np.asarray(img.convert("L"), dtype=np.float32)[None] / 255.0
            else:
                arr = np.asarray(img.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ModelinvError(f"cannot read image file {path}: {_one_line(err)}") from err
    return torch.from_numpy(np.ascontiguousarray(arr)), arr.shape[0] == 1


@FILE_SOURCES.register("folder", kind="image", usage="folder:PATH", options=("image_size",))
def read_folder(spec: str, image_size: int | None = None) -> ImageDataset:
    """A folder with one sub-folder of images (PNG, JPEG, BMP, PGM) per class; sorted sub-folder names are the classes.

    Grey if every image is grey, else RGB. Images must share one size unless `image_size` is given.
    """
    root = Path(spec).expanduser()
    if root.is_file():
        raise ModelinvError(f"data folder expected but {spec} is a file")
    if not root.is_dir():
        raise ModelinvError(f"data folder not found: {spec}")
    try:
        class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError as err:
        raise ModelinvError(f"cannot read data folder {root}: {_one_line(err)}") from None
    if not class_dirs:
        raise ModelinvError(f"{root} has no class sub-folders (expected one sub-folder of images per class)")
    if len(class_dirs) == 1:
        raise ModelinvError(f"{root} holds only one class sub-folder ('{class_dirs[0].name}'); a classifier needs at least two")
    files: list[Path] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        try:
            found = sorted(f for f in class_dir.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as err:
            raise ModelinvError(f"cannot read class folder {class_dir}: {_one_line(err)}") from None
        if not found:
            raise ModelinvError(f"class folder {class_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        files += found
        labels += [label] * len(found)
    if image_size is not None:
        check_allocation(len(files) * 3 * image_size * image_size * 4, f"{len(files)} images of {root} at {image_size}x{image_size}")
    read, total = [], 0
    for f in files:
        read.append(_read_image(f))
        total += read[-1][0].numel() * 4
        check_allocation(total, f"the images of {root}")
    channels = 1 if all(grey for _, grey in read) else 3
    if image_size is None:
        size = read[0][0].shape[1:]
        for (img, _), f in zip(read, files):
            if img.shape[1:] != size:
                raise ModelinvError(
                    f"image {f} is {img.shape[2]}x{img.shape[1]} but {files[0]} is {size[1]}x{size[0]}; set image_size to resize them all"
                )
    images = [to_channels(img[None], channels) for img, _ in read]
    if image_size is not None:
        images = [resize(img, image_size) for img in images]
    return ImageDataset(
        x=torch.cat(images),
        y=torch.tensor(labels, dtype=torch.int64),
        classes=tuple(d.name for d in class_dirs),
        name=f"folder:{root.name}",
    )


# --- csv: ---------------------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """A cell as an error message quotes it: at most 40 characters."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _number(text: str) -> float | None:
    """The number a cell holds (possibly not finite), or None if it is not one."""
    try:
        return float(text)
    except ValueError:
        return None


def _check_column(path: Path, name: str, values: list[str], lines: list[int]) -> bool:
    """Whether the column is numeric. A non-finite number is refused; so is a cell that is not a number in a
    column whose cells are mostly numbers (a stray word or byte would otherwise turn it categorical unseen)."""
    numbers = [_number(v) for v in values]
    for row, (value, number) in enumerate(zip(values, numbers), start=1):
        if number is not None and not math.isfinite(number):
            raise ModelinvError(f"{path}: non-finite value {_cell(value)} in column '{name}' at row {row} (line {lines[row - 1]})")
    numeric = sum(n is not None for n in numbers)
    if numeric == len(values):
        return True
    if 2 * numeric >= len(values):
        row = next(i for i, n in enumerate(numbers, start=1) if n is None)
        raise ModelinvError(
            f"{path}: column '{name}' holds numbers but row {row} (line {lines[row - 1]}) holds {_cell(values[row - 1])}; "
            "fix the cell, or write every value of a categorical column as text"
        )
    return False


@FILE_SOURCES.register("csv", kind="tabular", usage="csv:PATH", options=("label_column",))
def read_csv(spec: str, label_column: str | None = None) -> TabularDataset:
    """A CSV table (optionally gzipped) with a header row; `label_column` holds the class, the other columns are features.

    Numeric columns become float features; any other column is categorical: its sorted distinct values are its
    `levels` and the column holds level indices. Empty cells and ?, NA, N/A, NaN, null are missing values (an error).
    """
    path = _file(spec)
    try:
        text = _read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ModelinvError(f"{path} is not UTF-8 text: {_one_line(err)}") from err
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if row:
                rows.append((reader.line_num, [cell.strip() for cell in row]))
    except csv.Error as err:
        raise ModelinvError(f"{path}: bad CSV at line {reader.line_num}: {_one_line(err)}") from err
    if "\x00" in text:
        raise ModelinvError(f"{path}: NUL byte on line {text.count(chr(10), 0, text.index(chr(0))) + 1}; is it a binary file?")
    if not rows:
        raise ModelinvError(f"{path} is empty (expected a header row and data rows)")
    header = rows[0][1]
    columns = ", ".join(header)
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ModelinvError(f"{path}: the header repeats column '{repeated[0]}' (columns: {columns})")
    if label_column is None:
        raise ModelinvError(f"{path}: csv sources need label_column, the column holding the class (columns: {columns})")
    if label_column not in header:
        raise ModelinvError(f"{path} has no column '{label_column}' (columns: {columns})")
    if len(rows) == 1:
        raise ModelinvError(f"{path} has a header but no data rows")
    if len(header) == 1:
        raise ModelinvError(f"{path} has no feature columns besides '{label_column}'")
    for number, (line, row) in enumerate(rows[1:], start=1):
        if len(row) != len(header):
            raise ModelinvError(f"{path}: row {number} (line {line}) has {len(row)} fields but the header has {len(header)}")
        for name, cell in zip(header, row):
            if cell.lower() in MISSING:
                raise ModelinvError(f"{path}: missing value in column '{name}' at row {number} (line {line})")
    table = {name: [row[i] for _, row in rows[1:]] for i, name in enumerate(header)}
    lines = [line for line, _ in rows[1:]]

    label_values = table.pop(label_column)
    _check_column(path, label_column, label_values, lines)
    if all(re.fullmatch(r"[+-]?\d{1,18}", v) for v in label_values):  # int64, not a 5,000-digit integer
        y, classes = _labels(np.array([int(v) for v in label_values], dtype=np.int64))
    else:
        y, classes = _labels(np.array(label_values))
    _two_classes(classes, f"label column '{label_column}' of {path}")
    features, levels = [], {}
    for name, values in table.items():
        if _check_column(path, name, values, lines):
            features.append(np.array([float(v) for v in values]))
        else:
            index, levels[name] = _labels(np.array(values))
            features.append(index.numpy())
    return TabularDataset(
        x=torch.from_numpy(np.stack(features, axis=1).astype(np.float32)),
        y=y,
        classes=classes,
        name=f"csv:{path.name}",
        columns=tuple(table),
        levels=levels,
    )
