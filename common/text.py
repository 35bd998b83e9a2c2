"""Text tables for people: the one column aligner every command prints with (``tabulate``, plain style)."""

from __future__ import annotations

from typing import Iterable, Sequence

from tabulate import tabulate


def align_columns(header: Sequence[str], rows: Iterable[Sequence[object]],
                  left: Iterable[int] = (0,)) -> list[str]:
    """Lines of a plain table: columns two spaces apart, padded to their widest cell.

    Columns whose index is in ``left`` (names) are left-aligned, the others (numbers) right-aligned.
    Cells are printed as given (``str(cell)``; no number parsing), trailing spaces are stripped.
    """
    left = set(left)
    align = [("left" if i in left else "right") for i in range(len(header))]
    cells = [list(map(str, header))] + [[str(cell) for cell in row] for row in rows]
    # the header goes in as the first row: tabulate pads real headers by 2 extra spaces (MIN_PADDING)
    text = tabulate(cells, tablefmt="plain", colalign=align, disable_numparse=True)
    return [line.rstrip() for line in text.splitlines()]
