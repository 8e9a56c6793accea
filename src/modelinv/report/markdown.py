"""Markdown tables, written once for every command and benchmark."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from modelinv.report.aggregate import Interval, fmt


def cell(value: Any) -> str:
    """A table cell: an Interval as 'mean [low, high]', a number with 3 significant digits, None as '-'."""
    if isinstance(value, Interval):
        return value.text()
    return fmt(value).replace("|", "\\|")


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table.

    Shape: columns (c,), rows of c values each -> text ending in a newline.
    Example: table(["attack", "psnr"], [["rmle", 21.5]]) -> '| attack | psnr |\\n|---|---|\\n| rmle | 21.5 |\\n'.
    """
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
