"""Privacy-utility plots: attack success against target accuracy, one panel per (attack, success metric).

Each panel shows one series per defense (its strengths as point labels), the undefended model as a red star,
the trivial answer as a horizontal dotted line (an attack at or below it reveals nothing beyond the
attacker's prior), and the Pareto front (no other point has both higher accuracy and less attack success) as a
grey dashed line. The axes always include the trivial answer and span at least twice the metric's leakage
margin, so a spread of 0.8 dB does not look like a trend.

Sized for the report's 1100 px column: figures are 11 inches wide at 100 dpi (one image pixel per CSS
pixel) with 11-13 pt fonts; a point label goes where it overlaps no other label or marker, or is left out;
the legend is shared, in the free slot of an odd number of panels or below the panels.
"""

from __future__ import annotations

import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import matplotlib

if "ipykernel" not in sys.modules:  # in Jupyter keep the notebook's (inline) backend: it is headless too, and the user's plots need it
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

# One point: (target accuracy, attack success, annotation such as the defense strength).
Point = tuple[float, float, str]

WIDTH_IN, DPI = 11.0, 100
"""Figure width in inches and resolution: 1100 px, the report's column width."""

FONTS = {"font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "xtick.labelsize": 11, "ytick.labelsize": 11, "legend.fontsize": 11}

@dataclass
class Panel:
    """One (attack, metric) panel: the defenses' points, the undefended point (accuracy, success), the trivial
    answer's value of the metric, the metric's direction and its leakage margin (the least y span is twice it)."""

    title: str
    metric: str
    series: dict[str, Sequence[Point]] = field(default_factory=dict)
    reference: tuple[float, float] | None = None
    trivial: float | None = None
    higher_is_better: bool = True
    margin: float | None = None

    def points(self) -> list[tuple[float, float]]:
        """Every finite (accuracy, success) point of the panel, undefended included."""
        out = [(x, y) for pts in self.series.values() for x, y, _ in pts]
        out += [self.reference] if self.reference else []
        return [(x, y) for x, y in out if _finite(x) and _finite(y)]


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def pareto_front(points: Sequence[tuple[float, float]], higher_is_better: bool = True) -> list[tuple[float, float]]:
    """The points no other point dominates (accuracy at least as high and attack success at least as low,
    one strictly), sorted by accuracy. `higher_is_better` is the success metric's direction (False: knn_ratio).

    Example: pareto_front([(0.9, 0.8), (0.8, 0.2), (0.7, 0.5)]) -> [(0.8, 0.2), (0.9, 0.8)]."""
    sign = 1 if higher_is_better else -1

    def dominated(p):
        return any(q[0] >= p[0] and sign * q[1] <= sign * p[1] and (q[0] > p[0] or sign * q[1] < sign * p[1]) for q in points)

    return sorted({p for p in points if not dominated(p)})


def _limits(values: list[float], least_span: float) -> tuple[float, float]:
    low, high = min(values), max(values)
    span = max(high - low, least_span, 1e-9)
    middle = (low + high) / 2
    return middle - 0.58 * span, middle + 0.58 * span


def draw_panel(ax, panel: Panel) -> list[tuple[float, float, str]]:
    """Draw one panel; return the point labels wanted (x, y, text) for placing once the layout is final."""
    labels = []
    markers = "osD^vP<>X"
    for i, (name, points) in enumerate(panel.series.items()):
        points = [p for p in points if _finite(p[0]) and _finite(p[1])]
        if not points:
            continue
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=markers[i % len(markers)], linestyle="-", markersize=7, label=name, zorder=3)
        labels += [(x, y, note) for x, y, note in points if note]
    if panel.reference and all(_finite(v) for v in panel.reference):
        ax.plot([panel.reference[0]], [panel.reference[1]], "r*", markersize=16, label="no defense", zorder=4)
    front = pareto_front(panel.points(), panel.higher_is_better)
    if len(front) > 1:
        ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="0.55", linewidth=1.5, label="Pareto front", zorder=2)
    if _finite(panel.trivial):
        ax.axhline(panel.trivial, color="0.25", linestyle=":", linewidth=2, label="trivial answer", zorder=1)
    xs = [p[0] for p in panel.points()]
    ys = [p[1] for p in panel.points()] + ([panel.trivial] if _finite(panel.trivial) else [])
    if xs:
        ax.set_xlim(*_limits(xs, 0.04))
    if ys:
        ax.set_ylim(*_limits(ys, 2 * abs(panel.margin) if panel.margin else 0.0))
    ax.set_title(panel.title)
    ax.set_xlabel("target test accuracy (utility)")
    ax.set_ylabel(f"{panel.metric} ({'higher' if panel.higher_is_better else 'lower'}: more leakage)")
    ax.grid(alpha=0.3)
    return labels


OFFSETS = ((6, 5), (6, -17), (-10, 9), (-10, -21), (10, -6))
"""Candidate label positions relative to a point, in points: above right, below right, above left, below left, right."""


def _place_labels(fig, placed: list[tuple[object, list[tuple[float, float, str]]]], markers: list[tuple[object, float, float]]) -> int:
    """Annotate each point at the first offset where its label stays inside its axes and overlaps no label
    already drawn and no marker;
    labels that fit nowhere are left out (the legend and the table carry the values). Returns the count drawn."""
    scale = fig.dpi / 72
    boxes: list[tuple[object, float, float, float, float]] = []  # axes, x0, y0, x1, y1 in pixels
    dots = [(ax, *ax.transData.transform((x, y))) for ax, x, y in markers]
    drawn = 0
    for ax, labels in placed:
        for x, y, text in labels:
            px, py = ax.transData.transform((x, y))
            width, height = 6.2 * len(text) * scale, 11 * scale
            for dx, dy in OFFSETS:
                x0, y0 = px + dx * scale - (width if dx < 0 else 0), py + dy * scale
                box = (x0, y0, x0 + width, y0 + height)
                inside = ax.bbox.x0 <= box[0] and box[2] <= ax.bbox.x1 and ax.bbox.y0 <= box[1] and box[3] <= ax.bbox.y1
                clash = not inside or any(a is ax and box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for a, *b in boxes)
                clash |= any(a is ax and (qx, qy) != (px, py) and box[0] - 5 * scale < qx < box[2] + 5 * scale and box[1] - 5 * scale < qy < box[3] + 5 * scale
                             for a, qx, qy in dots)
                if not clash:
                    boxes.append((ax, *box))
                    ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx if dx > 0 else dx - 6.2 * len(text), dy), fontsize=10, color="0.15")
                    drawn += 1
                    break
    return drawn


def tradeoff_figure(panels: list[Panel], title: str, path: Path | None = None) -> bytes | None:
    """The panels that have data, two to a row, with one legend below them; saved to `path` if given; returns
    the PNG bytes (None when no panel has a point: no empty panels are drawn)."""
    panels = [p for p in panels if p.points()]
    if not panels:
        return None
    columns = 1 if len(panels) == 1 else 2
    rows = -(-len(panels) // columns)
    with plt.rc_context(FONTS):
        height = 4.6 * rows + (1.2 if columns == 2 and len(panels) % 2 == 0 else 0.6) if columns == 2 else 5.6
        fig, axes = plt.subplots(rows, columns, figsize=(WIDTH_IN if columns == 2 else 8.0, height), squeeze=False)
        placed = [(ax, draw_panel(ax, panel)) for ax, panel in zip(axes.flat, panels)]
        markers = [(ax, x, y) for ax, panel in zip(axes.flat, panels) for x, y in panel.points()]
        spare = list(axes.flat)[len(panels) :]
        handles: dict[str, object] = {}
        for ax in axes.flat[: len(panels)]:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, handle)
        fig.suptitle(title, fontsize=14)
        if spare:  # the legend takes the free slot of the last row instead of leaving an empty frame
            for ax in spare:
                ax.axis("off")
            spare[0].legend(list(handles.values()), list(handles), loc="center", frameon=False, fontsize=12)
            fig.tight_layout()
        else:
            legend_rows = -(-len(handles) // 4)
            fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(4, len(handles)), frameon=False)
            fig.tight_layout(rect=(0, (0.35 + 0.32 * legend_rows) / height, 1, 1))
        _place_labels(fig, placed, markers)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
        plt.close(fig)
    png = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(png)
    return png
