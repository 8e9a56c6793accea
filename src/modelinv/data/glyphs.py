"""Glyphs: printed characters rendered offline from the TrueType fonts matplotlib ships (the notMNIST /
Chars74K-Fnt idea), as 28x28 grey images in [0, 1], ink bright on black like MNIST.

    glyphs        250 images per class
    glyphs:N      N images per class

Classes, in this order: the upper-case letters A-Z, the digits 1-9, then the lower-case letters whose shape
differs from every upper-case letter once a glyph is scaled to fill its box (as MNIST's digits are), 53 in
all. Left out (`DROPPED`), because a LeNet trained on all 62 characters mistakes them for an upper-case
letter in a large share of a pair's test images: the lower-case c o s v w x z (the shape of C O S V W X Z:
25-36%), l (a bar like I: 16%, or a 1 without its flag: 10%) and the digit 0 (an O in the monospaced fonts:
15%); the most confused pair kept, J/j, is at 5%, B/8 at 3%. What remains is a clean class-disjoint protocol:
the 26 upper-case letters private, the 27 digits and lower-case letters public, and no public class is drawn
like a private one. The letters come first, so the class-disjoint split's default (the first half of the
classes, 53 // 2 = 26) is that protocol; `UPPER_CLASSES` names them for `data.private_classes`.

Each image is one of `FONTS` (DejaVu Sans, Sans Mono and Serif, STIX and Computer Modern; regular, bold,
italic), fonts taking turns within a class, under a random affine map (rotation, shear, scale, aspect,
translation), a random stroke width (grey-level dilation or erosion, by a fraction of a pixel) and a random
Gaussian blur, then quantised to 256 grey levels. Everything is drawn from one torch.Generator: the same seed
gives the same bytes. Glyph masks are rendered once per process.
"""

from __future__ import annotations

import importlib.util
import math
import string
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFont

from modelinv.data.types import ImageDataset
from modelinv.errors import ModelinvError

SEED = 20240601
PER_CLASS = 250
MAX_PER_CLASS = 2000

DROPPED = "0closvwxz"
"""Characters left out: each is drawn like an upper-case letter (see the module's docstring)."""
DIGITS = "".join(c for c in string.digits if c not in DROPPED)
UPPER = string.ascii_uppercase
LOWER = "".join(c for c in string.ascii_lowercase if c not in DROPPED)
CLASSES: tuple[str, ...] = tuple(UPPER + DIGITS + LOWER)
UPPER_CLASSES: list[int] = [CLASSES.index(c) for c in UPPER]
LETTERS: tuple[str, ...] = tuple(UPPER + LOWER)
"""The classes of the `letters` source: the glyphs' letters without the digits (an attacker's auxiliary data of
another domain than handwritten digits, as EMNIST letters are in the split-learning demonstrations)."""
"""Class indices of A-Z (0-25): the private classes of the class-disjoint protocol, public digits and lower case."""

FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmti10.ttf",
    "cmtt10.ttf",
)
"""matplotlib's fonts that draw all 62 characters as such (not cmmi10: old-style digits; not the symbol fonts)."""

SIZE = 28  # output side
BOX = 20  # longest side of an undistorted glyph in the output (MNIST's 20x20 box)
HIRES, HIRES_FIT = 64, 40  # canvas a glyph is fitted to (longest side HIRES_FIT), where strokes are grown or thinned
CANVAS, FIT = 32, 20  # the same halved: what the random affine map samples from
RENDER_PT = 96  # font size glyphs are rasterised at before they are fitted to the canvas
STROKE_LEVELS = (-1, 0, 1, 2)  # stroke width change of the precomputed masks, output pixels (1 = one HIRES pixel per side)

# ranges of the random variation (uniform)
ROTATION_DEG = 15.0
SHEAR = 0.3  # x += SHEAR * y at most
SCALE = (0.75, 1.1)
ASPECT = 0.15  # log of width / height, at most
SHIFT_PX = 3.0
STROKE = (-0.8, 1.9)  # stroke width change, output pixels: < 0 thins (erosion), > 0 thickens (dilation)
BLUR_SIGMA = (0.3, 1.2)  # output pixels
CHUNK = 4096


def _font_dir() -> Path:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModelinvError("dataset 'glyphs' renders matplotlib's fonts: pip install matplotlib")
    for root in spec.submodule_search_locations:
        folder = Path(root) / "mpl-data" / "fonts" / "ttf"
        if folder.is_dir():
            return folder
    raise ModelinvError("matplotlib is installed but has no mpl-data/fonts/ttf: reinstall it (pip install --force-reinstall matplotlib)")


def _fit(mask: Image.Image) -> np.ndarray:
    """A glyph's ink, cropped and scaled (aspect kept) so its longest side is HIRES_FIT, centred on a HIRES square."""
    box = mask.getbbox()
    if box is None:
        raise ModelinvError("a glyph rendered without ink")
    ink = mask.crop(box)
    w, h = ink.size
    k = HIRES_FIT / max(w, h)
    ink = ink.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.LANCZOS)
    canvas = Image.new("L", (HIRES, HIRES), 0)
    canvas.paste(ink, ((HIRES - ink.size[0]) // 2, (HIRES - ink.size[1]) // 2))
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _shifted_max(x: torch.Tensor, sign: float) -> torch.Tensor:
    """3x3 grey-level dilation (sign 1) or erosion (sign -1) of (..., H, W), as maxima of shifted copies (faster than pooling)."""
    y = x * sign
    pad = F.pad(y, (1, 1, 1, 1), value=float("-inf"))
    h, w = y.shape[-2:]
    rows = torch.maximum(torch.maximum(pad[..., :, 0:w], pad[..., :, 1 : w + 1]), pad[..., :, 2 : w + 2])
    out = torch.maximum(torch.maximum(rows[..., 0:h, :], rows[..., 1 : h + 1, :]), rows[..., 2 : h + 2, :])
    return out * sign


@lru_cache(maxsize=1)
def glyph_masks() -> torch.Tensor:
    """(len(FONTS), len(CLASSES), len(STROKE_LEVELS), CANVAS, CANVAS) float32: every character of every font at
    every stroke level, ink in [0, 1] (rendered once per process)."""
    folder = _font_dir()
    hires = np.zeros((len(FONTS), len(CLASSES), HIRES, HIRES), dtype=np.float32)
    for f, name in enumerate(FONTS):
        path = folder / name
        if not path.is_file():
            raise ModelinvError(f"dataset 'glyphs' needs matplotlib's font {name}, missing from {folder}")
        font = ImageFont.truetype(str(path), RENDER_PT)
        for c, char in enumerate(CLASSES):
            core = font.getmask(char, mode="L")
            hires[f, c] = _fit(Image.frombytes("L", core.size, bytes(core)))
    x = torch.from_numpy(hires).flatten(0, 1).unsqueeze(1)
    levels = {0: x}
    for level in range(1, max(STROKE_LEVELS) + 1):
        levels[level] = _shifted_max(levels[level - 1], 1.0)
    for level in range(-1, min(STROKE_LEVELS) - 1, -1):
        levels[level] = _shifted_max(levels[level + 1], -1.0)
    stacked = torch.cat([F.avg_pool2d(levels[level], HIRES // CANVAS) for level in STROKE_LEVELS], dim=1)
    return stacked.view(len(FONTS), len(CLASSES), len(STROKE_LEVELS), CANVAS, CANVAS).contiguous()


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)


def _thetas(n: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) maps from output to canvas coordinates (normalised, align_corners=False) of n random affine distortions."""
    angle = _uniform(n, -ROTATION_DEG, ROTATION_DEG, gen) * math.pi / 180
    shear = _uniform(n, -SHEAR, SHEAR, gen)
    scale = _uniform(n, *SCALE, gen)
    aspect = torch.exp(_uniform(n, -ASPECT, ASPECT, gen))
    shift = _uniform(2 * n, -SHIFT_PX, SHIFT_PX, gen).view(n, 2) * (2 / SIZE)
    base = (FIT / CANVAS) / (BOX / SIZE)  # canvas units per output unit at scale 1
    cos, sin = torch.cos(angle), torch.sin(angle)
    # forward map (canvas -> output), y down: rotate . shear . scale(sx, sy)
    sx, sy = scale * aspect.sqrt() / base, scale / aspect.sqrt() / base
    forward = torch.zeros(n, 2, 2, dtype=torch.float64)
    forward[:, 0, 0] = cos * sx
    forward[:, 0, 1] = (cos * shear - sin) * sy
    forward[:, 1, 0] = sin * sx
    forward[:, 1, 1] = (sin * shear + cos) * sy
    inverse = torch.linalg.inv(forward)
    offset = -(inverse @ shift.unsqueeze(2))
    return torch.cat([inverse, offset], dim=2).to(torch.float32)


def _grid(thetas: torch.Tensor, side: int) -> torch.Tensor:
    """affine_grid(thetas, (n, 1, side, side), align_corners=False), as broadcast products."""
    centres = (torch.arange(side, dtype=torch.float32) * 2 + 1) / side - 1
    gx, gy = centres.view(1, 1, side), centres.view(1, side, 1)
    t = thetas.view(-1, 6, 1, 1)
    return torch.stack([t[:, 0] * gx + t[:, 1] * gy + t[:, 2], t[:, 3] * gx + t[:, 4] * gy + t[:, 5]], dim=-1)


def _blur(x: torch.Tensor, sigma: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per image, as shifted sums (exact, the same on any thread count)."""
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    weights = torch.exp(-(taps**2) / (2 * sigma.view(-1, 1) ** 2))
    weights = weights / weights.sum(1, keepdim=True)
    n = x.shape[0]
    for dim in (2, 3):
        padded = F.pad(x, (radius, radius, 0, 0) if dim == 3 else (0, 0, radius, radius))
        out = torch.zeros_like(x)
        for k in range(2 * radius + 1):
            out += weights[:, k].view(n, 1, 1, 1) * padded.narrow(dim, k, x.shape[dim])
        x = out
    return x


def render(per_class: int = PER_CLASS, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 28, 28) float32 in [0, 1] and labels (N,), `per_class` images of each of CLASSES, class by class."""
    masks = glyph_masks()
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(CLASSES)).repeat_interleave(per_class)
    n = len(labels)
    fonts = torch.arange(per_class).remainder(len(FONTS)).repeat(len(CLASSES))
    thetas = _thetas(n, gen)
    stroke = _uniform(n, *STROKE, gen).to(torch.float32) - STROKE_LEVELS[0]  # position among the stroke levels
    level = stroke.floor().long().clamp(0, len(STROKE_LEVELS) - 2)
    between = (stroke - level).view(n, 1, 1, 1)
    sigma = _uniform(n, *BLUR_SIGMA, gen).to(torch.float32)
    out = torch.empty(n, 1, SIZE, SIZE)
    for start in range(0, n, CHUNK):
        part = slice(start, min(start + CHUNK, n))
        f, c, k, t = fonts[part], labels[part], level[part], between[part]
        source = torch.lerp(masks[f, c, k], masks[f, c, k + 1], t.view(-1, 1, 1)).unsqueeze(1)
        warped = F.grid_sample(source, _grid(thetas[part], SIZE), mode="bilinear", padding_mode="zeros", align_corners=False)
        blurred = _blur(warped, sigma[part])
        peak = blurred.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        out[part] = (blurred / peak).mul_(255).round_().div_(255)
    return out, labels


_CACHE: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}  # the last set rendered in this process


def glyphs(per_class: int = PER_CLASS, seed: int = SEED) -> ImageDataset:
    """`per_class` rendered images of each character of CLASSES (the last set asked for is kept; callers get copies)."""
    if isinstance(per_class, bool) or not isinstance(per_class, int) or not 2 <= per_class <= MAX_PER_CLASS:
        raise ModelinvError(f"glyphs:N needs N between 2 and {MAX_PER_CLASS} images per class, got {per_class!r}")
    key = (per_class, seed)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = render(per_class, seed)
    x, y = _CACHE[key]
    name = "glyphs" if per_class == PER_CLASS else f"glyphs:{per_class}"
    if seed != SEED:
        name = f"{name}#seed={seed}"
    return ImageDataset(x=x.clone(), y=y.clone(), classes=CLASSES, name=name)


def letters(per_class: int = PER_CLASS, seed: int = SEED) -> ImageDataset:
    """The letter classes of `glyphs(per_class, seed)` (LETTERS, labelled in that order), without the digits.

    Example: letters(20).x.shape == (880, 1, 28, 28) (44 classes of 20 images)."""
    full = glyphs(per_class, seed)
    keep = torch.tensor([CLASSES.index(c) for c in LETTERS])
    relabel = torch.full((len(CLASSES),), -1, dtype=torch.long)
    relabel[keep] = torch.arange(len(keep))
    mask = torch.isin(full.y, keep)
    name = full.name.replace("glyphs", "letters", 1)
    return ImageDataset(x=full.x[mask], y=relabel[full.y[mask]], classes=LETTERS, name=name)


def parse_count(spec: str) -> int:
    """N of a `glyphs:N` source."""
    try:
        return int(spec)
    except ValueError:
        raise ModelinvError(f"glyphs:N needs a whole number of images per class, got '{spec}'") from None
