"""Terminal output shared by the `bakery` commands: aligned tables and JSON."""

from __future__ import annotations

import json
from typing import Any


def table_lines(rows: list[list[Any]], header: list[str]) -> list[str]:
    """Left-aligned columns under a dashed rule, two spaces apart, indented by two."""
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    cells.insert(1, ["-" * w for w in widths])
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def print_table(rows: list[list[Any]], header: list[str]) -> None:
    print("\n".join(table_lines(rows, header)))


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))
