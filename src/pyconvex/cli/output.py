"""What the CLI prints: tables on a terminal, whole tab-separated lines anywhere else.

Rich fits a table to the terminal's width, and to 80 columns when the output is a pipe or
a file, wrapping and cutting cells; ``pyconvex data tasks | cut -f1`` must get whole ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Column, Table
from rich.text import Text


def console(*, stderr: bool = False) -> Console:
    """A console that never breaks a line (a message, a path, a file:line) at the terminal's
    width, nor turns ``:name:`` in a log message into an emoji."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


def _plain(cell: str) -> str:
    # One row per line, one cell per tab, whatever the values hold.
    return cell.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def print_table(
    out: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    widest: Mapping[str, int] | None = None,
) -> None:
    """A table on a terminal (cells folded, never cut, except the columns ``widest`` names,
    shortened to that many characters); tab-separated lines with a header line otherwise."""
    if not out.is_terminal:
        for row in [headers, *rows]:
            out.file.write("\t".join(_plain(cell) for cell in row) + "\n")
        out.file.flush()
        return
    limits = widest or {}
    grid = Table(*(Column(name, overflow="fold") for name in headers))
    for row in rows:
        # Text, not str: a value holding "[red]" is data, not rich markup.
        grid.add_row(
            *(
                Text(_shorten(cell, limits[name]) if name in limits else cell)
                for name, cell in zip(headers, row, strict=True)
            )
        )
    out.print(grid)


def _shorten(text: str, limit: int) -> str:
    first = text.split("\n", 1)[0]
    return first if len(first) <= limit and first == text else first[: limit - 1] + "…"
