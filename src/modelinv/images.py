"""PNG grids of original inputs above their reconstructions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def image_grid(rows: list[torch.Tensor], columns: int = 16, scale: int = 2, pad: int = 2) -> Image.Image:
    """Stack image batches (N, C, H, W) in [0, 1] as rows of a grid; the first `columns` images of each."""
    rows = [r[:columns].detach().float().clamp(0, 1).cpu() for r in rows]
    n = max(len(r) for r in rows)
    c, h, w = rows[0].shape[1:]
    canvas = np.ones((len(rows) * (h + pad) + pad, n * (w + pad) + pad, 3), dtype=np.float32)
    for i, batch in enumerate(rows):
        for j, img in enumerate(batch):
            rgb = img.expand(3, h, w) if c == 1 else img[:3]
            top, left = pad + i * (h + pad), pad + j * (w + pad)
            canvas[top : top + h, left : left + w] = rgb.permute(1, 2, 0).numpy()
    picture = Image.fromarray((canvas * 255).round().astype(np.uint8))
    return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)


def save_grid(path: Path, originals: torch.Tensor | None, reconstructions: torch.Tensor, columns: int = 16) -> Path:
    """Write originals above reconstructions to `path` as PNG."""
    image_grid([originals, reconstructions], columns).save(path)
    return Path(path)


def save_class_grid(path: Path, images: torch.Tensor, labels: torch.Tensor, columns: int = 16) -> Path:
    """Write class-representative inversions to `path` as PNG, one row per class."""
    image_grid([images[labels == c] for c in labels.unique()], columns).save(path)
    return Path(path)
