"""Privacy-utility plots: target accuracy against attack success, one series per defense, undefended as a star."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

# One point: (attack success, target accuracy, annotation such as the defense strength).
Point = tuple[float, float, str]


def tradeoff_panel(ax, series: dict[str, Sequence[Point]], reference: tuple[float, float] | None, xlabel: str) -> None:
    """Draw each defense's points joined in order, annotated, and the undefended model as a red star."""
    for label, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=label)
        for x, y, note in points:
            if note:
                ax.annotate(note, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if reference is not None:
        ax.plot([reference[0]], [reference[1]], "r*", markersize=12, label="no defense")
    ax.set_xlabel(f"{xlabel} (attack success)")
    ax.set_ylabel("target test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def tradeoff_figure(panels: list[tuple[str, dict[str, Sequence[Point]], tuple[float, float] | None]], title: str, path: Path | None = None) -> bytes:
    """One panel per (xlabel, series, reference), three to a row; saved to `path` if given; returns the PNG bytes."""
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.7 * rows), squeeze=False)
    for ax, (xlabel, series, reference) in zip(axes.flat, panels):
        tradeoff_panel(ax, series, reference, xlabel)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    png = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(png)
    return png
