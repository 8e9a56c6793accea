"""Image conversions shared by the loaders and the cross-domain split: size and channel count."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modelinv.errors import ModelinvError
from modelinv.validation import check_allocation

# ITU-R BT.601 luma weights, as in Pillow's convert("L").
LUMINANCE = (0.299, 0.587, 0.114)


def resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Images (N, C, H, W) resized to `size` (an int for a square), bilinear with antialiasing, clamped to [0, 1]."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == hw:
        return x
    n, c = int(x.shape[0]), int(x.shape[1])
    check_allocation(n * c * hw[0] * hw[1] * x.element_size(), f"{n} images resized to {hw[1]}x{hw[0]}")
    out = F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Images (N, C, H, W) with `channels` channels: grey to RGB by repetition, RGB to grey by luminance."""
    have = int(x.shape[1])
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return x.repeat(1, 3, 1, 1)
    if have == 3 and channels == 1:
        weights = torch.tensor(LUMINANCE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * weights).sum(dim=1, keepdim=True)
    raise ModelinvError(f"cannot convert {have}-channel images to {channels} channels (only 1 <-> 3)")


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image translated by its own random offset in [-max_shift, max_shift] pixels, zero-filled."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(n)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None], rows, cols]
