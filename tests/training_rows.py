"""Tiny chatml rows in the persuader's reply format, for the training tests (CPU and CUDA)."""

from __future__ import annotations

from pathlib import Path

from engine.jsonl import write_json_lines


def chat_rows(n: int) -> list[dict]:
    return [
        {"messages": [
            {"role": "system", "content": f"Persuade them to choose A. Turn {i % 3 + 1}."},
            {"role": "user", "content": "The conversation starts."},
            {"role": "assistant", "content": f"MOVES: disclose A.cost=-1\nMESSAGE: A costs less ({i})."},
        ]}
        for i in range(n)
    ]


def write_rows(path: Path, rows: list[dict]) -> str:
    write_json_lines(path, rows)
    return str(path)
