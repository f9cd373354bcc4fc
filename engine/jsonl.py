"""JSONL the one way: read every value with its line number (a bad line named as `file:line`), write one a line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from engine.errors import LabError
from engine.files import atomic_write

MAX_LINE_BYTES = 16 * 1024 * 1024
"""The longest line read (16 MiB): a conversation is a few KB, so a longer line is a broken file, and refusing it
keeps memory bounded (json.loads of a 60 MB line needs gigabytes)."""


def json_lines(
    path: str | Path,
    error: type[LabError] = LabError,
    on_bad: Callable[[int, str], None] | None = None,
) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line, lazily.

    A bad line raises `error` naming `file:line`; with `on_bad`, it is handed to `on_bad(line, reason)` and skipped
    instead, so callers that skip bad lines count them rather than lose them. Bad means: not JSON, bytes that are
    not UTF-8, brackets nested too deeply for the parser, or longer than `MAX_LINE_BYTES` (never read whole).
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    with open(path, "rb") as fh:
        lineno = 0
        while True:
            raw = fh.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            lineno += 1
            value, reason = _parse(raw, fh)
            if reason is None:
                yield lineno, value
            elif reason:  # "" is a blank line
                if on_bad is None:
                    raise error(f"{path}:{lineno}: {reason}")
                on_bad(lineno, reason)


def _parse(raw: bytes, fh: BinaryIO) -> tuple[Any, str | None]:
    """(value, None) for a good line, (None, reason) for a bad one, (None, "") for a blank one.

    A line over the limit is skipped to its end in bounded chunks, so the next line keeps its number."""
    if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
        size = len(raw)
        while not raw.endswith(b"\n"):
            raw = fh.readline(MAX_LINE_BYTES)
            if not raw:
                break
            size += len(raw)
        return None, f"line of {size:,} bytes, over the limit of {MAX_LINE_BYTES // 2**20} MiB"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
    if not text.strip():
        return None, ""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return None, "not usable JSON (brackets nested too deeply)"


def write_json_lines(path: str | Path, values: Iterable[Any]) -> int:
    """Write one JSON value a line (UTF-8, not ASCII-escaped) atomically; returns how many.

    The folder must exist (a LabError names it otherwise); an error while `values` is consumed leaves an existing
    file as it was.
    """
    n = 0
    with atomic_write(path) as fh:
        for value in values:
            fh.write(json.dumps(value, ensure_ascii=False) + "\n")
            n += 1
    return n
