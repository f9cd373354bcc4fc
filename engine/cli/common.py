"""Helpers shared by the command modules: the store from `--db`, the console, progress bars, list output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from engine.store import Store

console = Console()
err_console = Console(stderr=True)


def open_store(args: argparse.Namespace) -> Store:
    return Store(args.db)


def progress() -> Progress:
    """The lab's one progress-bar layout for long headless commands."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """`--json` for a list command: what `print_rows` prints instead of columns."""
    parser.add_argument("--json", action="store_true", help="print the rows as a JSON array of objects")


def print_rows(
    args: argparse.Namespace, columns: Sequence[str], rows: list[dict[str, Any]],
    table: Callable[[list[dict[str, Any]]], RenderableType], notes: Sequence[str] = (),
) -> None:
    """Every list command's output. `--json`: the rows as a JSON array. A pipe or a file: a header and one line
    a row, tab-separated, every value whole (rich would wrap at 80 columns and cut ids to `business_vac…`, and
    grep would miss them). A terminal: `table(rows)`, the readable table. `notes` (counts, where things are) go
    under that table, and to stderr otherwise, so that standard output holds the rows only."""
    as_json = getattr(args, "json", False)
    as_table = sys.stdout.isatty() and not as_json
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2, default=str) + "\n")
    elif as_table:
        console.print(table(rows))
    else:
        lines = ["\t".join(columns)] + ["\t".join(_cell(row.get(c)) for c in columns) for row in rows]
        sys.stdout.write("\n".join(lines) + "\n")
    for note in notes:
        (console if as_table else err_console).print(note, highlight=False, soft_wrap=True)


def _cell(value: Any) -> str:
    """A value as one tab-separated cell: lists joined by spaces, None empty, tabs and newlines made spaces."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = " ".join(map(str, value))
    elif isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False)
    return " ".join(str(value).replace("\t", " ").splitlines())


def positive_int(text: str) -> int:
    """argparse `type=` for counts and limits (`--max-turns`, `--concurrency`, `--workers`): 0 or -3 is a typo,
    refused by argparse with one line naming the flag, never a run that does nothing or everything."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
