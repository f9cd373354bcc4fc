"""The OpenAI fine-tuning API's rules for chat JSONL, and a validator that names every breach by line.

Rules, from the fine-tuning guide (https://platform.openai.com/docs/guides/fine-tuning, "Preparing your dataset",
"Token limits") and the checks of OpenAI's cookbook notebook `examples/Chat_finetuning_data_prep.ipynb`
(whose error names are kept here, so a message can be looked up there):

- every line is one JSON object with a non-empty `messages` list (`data_type`, `missing_messages_list`);
- every message is an object with `role` and `content` (`message_missing_key`) and no other keys than
  role, content, name, weight, function_call, tool_calls (`message_unrecognized_key`);
- roles are system, user, assistant, tool or function (`unrecognized_role`);
- content is a non-empty string (`missing_content`), except an assistant message that calls a function;
- `weight`, where given, is 0 or 1 on an assistant message (`bad_weight`);
- every example holds at least one assistant message (`example_missing_assistant_message`);
- a file holds at least 10 examples (`too_few_examples`);
- no example is longer than the model's training-example limit (`example_too_long`; limits in `engine.llm.pricing`;
  counted with the lab's tokenizer, an estimate of OpenAI's own count, which the API would truncate to).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import LabError

ROLES = ("system", "user", "assistant", "tool", "function")
MESSAGE_KEYS = ("role", "content", "name", "weight", "function_call", "tool_calls")
EXAMPLE_KEYS = ("messages", "tools", "parallel_tool_calls", "functions")
MIN_EXAMPLES = 10


@dataclass(frozen=True)
class Breach:
    line: int  # 0 for the file as a whole
    code: str
    detail: str

    def text(self, path: str) -> str:
        where = f"{path}:{self.line}" if self.line else path
        return f"{where}: {self.code}: {self.detail}"


@dataclass
class Report:
    path: str
    examples: int = 0
    breaches: list[Breach] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaches

    def counts(self) -> dict[str, int]:
        return dict(Counter(b.code for b in self.breaches))


def example_breaches(example: Any) -> list[tuple[str, str]]:
    """(code, detail) for each rule one example breaks; empty when it follows them all."""
    if not isinstance(example, dict):
        return [("data_type", f"an example must be a JSON object, got {type(example).__name__}")]
    out: list[tuple[str, str]] = []
    for key in example:
        if key not in EXAMPLE_KEYS:
            out.append(("unrecognized_key", f"unknown top-level key '{key}' (allowed: {', '.join(EXAMPLE_KEYS)})"))
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        out.append(("missing_messages_list", "'messages' must be a non-empty list of messages"))
        return out
    for i, m in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(m, dict):
            out.append(("data_type", f"{at} must be an object with 'role' and 'content'"))
            continue
        calls = m.get("function_call") or m.get("tool_calls")
        for key in ("role", "content"):
            if key not in m and not (key == "content" and calls):
                out.append(("message_missing_key", f"{at} has no '{key}'"))
        for key in m:
            if key not in MESSAGE_KEYS:
                out.append(("message_unrecognized_key", f"{at} has unknown key '{key}'"))
        role = m.get("role")
        if "role" in m and role not in ROLES:
            out.append(("unrecognized_role", f"{at}.role is {role!r} (allowed: {', '.join(ROLES)})"))
        content = m.get("content")
        if "content" in m and not (calls and content is None) and (not isinstance(content, str) or not content.strip()):
            out.append(("missing_content", f"{at}.content must be a non-empty string"))
        if "weight" in m and (role != "assistant" or m["weight"] not in (0, 1) or isinstance(m["weight"], bool)):
            out.append(("bad_weight", f"{at}.weight must be 0 or 1, on an assistant message"))
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        out.append(("example_missing_assistant_message", "no assistant message to learn from"))
    return out


def validate_file(path: str | Path, token_limit: int | None = None, model: str | None = None) -> Report:
    """Check a chat JSONL file against every rule above; token lengths counted with `model`'s tokenizer."""
    from engine.pipeline.tokens import count_chats

    path = Path(path)
    if not path.is_file():
        raise LabError(f"{path}: no such file")
    report = Report(str(path))
    chats: list[tuple[int, list[dict[str, str]]]] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                report.breaches.append(Breach(lineno, "blank_line", "empty line (the API reads every line as an example)"))
                continue
            try:
                example = json.loads(line)
            except json.JSONDecodeError as exc:
                report.breaches.append(Breach(lineno, "invalid_json", f"{exc.msg} at column {exc.colno}"))
                continue
            report.examples += 1
            found = example_breaches(example)
            report.breaches.extend(Breach(lineno, code, detail) for code, detail in found)
            if not found:
                chats.append((lineno, [{"role": m["role"], "content": m.get("content") or ""} for m in example["messages"]]))
    if report.examples < MIN_EXAMPLES:
        report.breaches.append(
            Breach(0, "too_few_examples", f"{report.examples} examples; the API needs at least {MIN_EXAMPLES}")
        )
    if token_limit and chats:
        report.tokens = count_chats([c for _, c in chats], model)
        for (lineno, _), n in zip(chats, report.tokens, strict=True):
            if n > token_limit:
                report.breaches.append(
                    Breach(lineno, "example_too_long", f"{n} tokens, over the {token_limit}-token limit per example")
                )
    report.breaches.sort(key=lambda b: b.line)
    return report


__all__ = ["Breach", "MIN_EXAMPLES", "Report", "example_breaches", "validate_file"]
