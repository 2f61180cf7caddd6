"""The table both benchmarks print: median, min and max per row, plus one comparison column."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from rich.console import Console
from rich.table import Table


def print_medians(title: str, samples: dict[str, list[float]], *, first: str, compare: str,
                  compared: Callable[[str, float], str], digits: int = 3) -> None:
    """``compared(label, median)`` fills the last column (a share or a ratio)."""
    table = Table(title=title)
    for column in (first, "median s", "min s", "max s", compare):
        table.add_column(column, justify="left" if column == first else "right")
    for label, values in samples.items():
        median = statistics.median(values)
        table.add_row(label.removesuffix("_s"), f"{median:.{digits}f}", f"{min(values):.{digits}f}",
                      f"{max(values):.{digits}f}", compared(label, median))
    Console().print(table)
