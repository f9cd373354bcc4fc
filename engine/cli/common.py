"""Helpers shared by the command modules: the store from `--db`, the console, progress bars."""

from __future__ import annotations

import argparse

from rich.console import Console
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
