"""Human-readable report: a rich table of operations, then the stack outputs."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

_STYLE = {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red", "same": "dim"}
_SYMBOL = {"create": "+", "update": "~", "replace": "+-", "delete": "-", "same": " "}


def print_report(
    console: Console,
    command: str,
    stack: str,
    operations: list[dict[str, str]],
    outputs: dict[str, Any],
    error: str | None,
) -> None:
    ops = Table(title=f"{command} · stack {stack}", title_justify="left")
    for col in ("", "op", "type", "name"):
        ops.add_column(col)
    for o in operations:
        style = _STYLE.get(o["op"], "")
        ops.add_row(*(Text(c) for c in (_SYMBOL.get(o["op"], ""), o["op"], o["type"], o["name"])), style=style)
    console.print(ops)
    counts: dict[str, int] = {}
    for o in operations:
        counts[o["op"]] = counts.get(o["op"], 0) + 1
    console.print("Resources: " + (", ".join(f"{n} {op}" for op, n in sorted(counts.items())) or "none"))
    if outputs:
        table = Table(title="Outputs", title_justify="left")
        table.add_column("name")
        table.add_column("value", overflow="fold")
        for key, value in outputs.items():
            text = value if isinstance(value, str) else json.dumps(value, indent=1, ensure_ascii=False)
            table.add_row(Text(key), Text(text))  # Text: values such as "[secret]" are not markup
        console.print(table)
    if error:
        console.print(Text.assemble(("error: ", "bold red"), error))
