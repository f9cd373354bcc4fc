"""JSONL the one way: read every value with its line number (a bad line named as `file:line`), write one a line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from engine.errors import LabError


def json_lines(
    path: str | Path,
    error: type[LabError] = LabError,
    on_bad: Callable[[int, str], None] | None = None,
) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line, lazily.

    A line that is not JSON raises `error` naming `file:line`; with `on_bad`, it is handed to `on_bad(line, reason)`
    and skipped instead, so callers that skip bad lines count them rather than lose them.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                reason = f"not valid JSON ({exc.msg} at column {exc.colno})"
                if on_bad is None:
                    raise error(f"{path}:{lineno}: {reason}") from None
                on_bad(lineno, reason)
                continue
            yield lineno, value


def write_json_lines(path: str | Path, values: Iterable[Any]) -> int:
    """Write one JSON value a line (UTF-8, not ASCII-escaped), making the folder; returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for value in values:
            fh.write(json.dumps(value, ensure_ascii=False) + "\n")
            n += 1
    return n
