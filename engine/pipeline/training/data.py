"""Reading training files (DESIGN.md "Training files") into the rows trl's trainers take.

SFT trains on conversational prompt/completion rows, so trl puts the loss on the completion (the assistant
turn) only: data prep's `to_prompt_completion` makes them from chatml/openai/sharegpt rows. KTO rows need prompt/completion/
label, DPO rows prompt/chosen/rejected. Every problem is reported as `file:line` with the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import LabError
from engine.jsonl import json_lines
from engine.pipeline.dataprep import to_prompt_completion

REQUIRED = {"kto": ("prompt", "completion", "label"), "dpo": ("prompt", "chosen", "rejected"),
            # GRPO: a prompt and the game state its rewards rebuild (written by training/grpo.py from played games)
            "grpo": ("prompt", "scenario", "turn", "history", "personality", "condition", "seed", "rules")}


def read_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a training file, read with the project's one JSONL reader (`engine.jsonl`)."""
    if not Path(path).exists():  # say which file is missing in the words of this command
        raise LabError(f"training data not found: {path}")
    for number, row in json_lines(path):
        if not isinstance(row, dict):
            raise LabError(f"{path}:{number}: each line must be a JSON object")
        yield number, row


def _messages(value: Any, where: str, field: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise LabError(f"{where}: '{field}' must be a non-empty list of messages")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise LabError(f"{where}: '{field}[{i}]' must be {{\"role\": ..., \"content\": \"...\"}}")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def sft_row(row: dict[str, Any], where: str) -> dict[str, list[dict[str, str]]]:
    """A chatml / openai / sharegpt / prompt-completion row as checked conversational prompt/completion."""
    try:
        pc = to_prompt_completion(row)
    except (LabError, AttributeError, KeyError, TypeError) as exc:
        raise LabError(f"{where}: {exc}") from None
    return {"prompt": _messages(pc["prompt"], where, "prompt"), "completion": _messages(pc["completion"], where, "completion")}


def load_rows(path: str | Path, method: str) -> list[dict[str, Any]]:
    """All rows of a training file, checked and converted for `method` (sft, kto, dpo or grpo)."""
    out = []
    for number, row in read_rows(path):
        where = f"{path}:{number}"
        if method == "sft":
            out.append(sft_row(row, where))
            continue
        missing = [f for f in REQUIRED[method] if f not in row]
        if missing:
            raise LabError(f"{where}: a {method} row needs {', '.join(REQUIRED[method])}; missing {', '.join(missing)}")
        if method == "grpo":
            kept = [f for f in (*REQUIRED[method], "reply") if f in row]  # `reply`: the format (older files: compact)
            out.append({**{f: row[f] for f in kept}, "prompt": _messages(row["prompt"], where, "prompt")})
            continue
        if method == "kto":
            if not isinstance(row["label"], bool):
                raise LabError(f"{where}: 'label' must be true or false")
            out.append({"prompt": _messages(row["prompt"], where, "prompt"),
                        "completion": _messages(row["completion"], where, "completion"), "label": row["label"]})
        else:
            out.append({"prompt": _messages(row["prompt"], where, "prompt"),
                        "chosen": _messages(row["chosen"], where, "chosen"),
                        "rejected": _messages(row["rejected"], where, "rejected")})
    if not out:
        raise LabError(f"{path}: no training rows")
    if method == "kto" and len({r["label"] for r in out}) < 2:
        raise LabError(f"{path}: KTO needs both desirable (label true) and undesirable (label false) rows")
    return out
