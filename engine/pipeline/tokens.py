"""Token counts with the tokenizer of the model to be trained (the embedded SmolLM2 by default).

Counts are what the trainer will see: a chat is rendered with the model's own chat template, then encoded in
one batch by the Rust tokenizer (`encode_batch_fast`, no offsets). Training examples repeat most of their text
(the scenario in every system prompt, the dialogue so far in every user prompt), so for byte-level BPE tokenizers
with the GPT-2 pre-tokenizer (SmolLM2, GPT-2, ...) texts are cut into lines (at a newline between two non-space
characters) and distinct lines into words (before a space between an ASCII letter or digit and a letter), every
distinct word is encoded once, and counts are summed. That is exact for such tokenizers: their pre-tokenizer
never joins a newline to the non-space character after it, nor a letter or digit to the space after it, so no
token crosses a cut (tests compare it with whole-text encoding). Other tokenizers encode whole texts.
transformers is imported on first use, never at start-up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from engine.errors import LabError

Message = dict[str, str]
LINE_CUT = re.compile(r"(?<=\S\n)(?=\S)")
WORD_CUT = re.compile(r"(?<=[A-Za-z0-9])(?= [A-Za-z])")


@lru_cache(maxsize=4)
def load_tokenizer(model: str | None = None) -> Any:
    """The fast tokenizer of `model` ('' / 'embedded' / None: the embedded SmolLM2), loaded once per process."""
    from pathlib import Path

    from engine.llm.embedded import resolve_model_path

    path = resolve_model_path(model)
    if (path.startswith((".", "/", "~")) or path.count("/") > 1) and not Path(path).expanduser().exists():
        raise LabError(f"cannot load a tokenizer for '{model}': no such folder {path}")
    try:
        if (Path(path) / "tokenizer.json").is_file():
            # a local folder with a fast tokenizer: the generic class loads it without importing torch (~2 s less)
            from transformers import PreTrainedTokenizerFast

            tok = PreTrainedTokenizerFast.from_pretrained(path)
        else:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot load a tokenizer for '{model or 'embedded'}' ({path}): {exc}") from None
    if not getattr(tok, "is_fast", False):
        raise LabError(f"the tokenizer of '{model}' has no fast (Rust) version; token counting needs one")
    return tok


@lru_cache(maxsize=4)
def cuts_exactly(model: str | None = None) -> bool:
    """Whether counts add up over lines (see the module docstring): byte-level BPE, GPT-2 regex, no normaliser."""
    backend = load_tokenizer(model).backend_tokenizer
    if backend.normalizer is not None or backend.pre_tokenizer is None:
        return False
    pre = json.loads(backend.pre_tokenizer.__getstate__())
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    byte_level = [p for p in parts if p.get("type") == "ByteLevel"]
    return (
        len(byte_level) == 1
        and byte_level[0].get("use_regex", True)
        and not byte_level[0].get("add_prefix_space", False)
        and all(p.get("type") in ("ByteLevel", "Digits") for p in parts)
    )


def _encode_lengths(texts: list[str], model: str | None) -> list[int]:
    backend = load_tokenizer(model).backend_tokenizer
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return [len(e.ids) for e in encode(texts, add_special_tokens=False)]


def count_texts(texts: Sequence[str], model: str | None = None, words: dict[str, int] | None = None) -> list[int]:
    """Tokens in each text, special tokens written in the text counted as one each.

    `words` (word -> tokens), kept by a caller that counts in batches, is filled and reused so that a word is
    encoded once however many batches it appears in (a batch at a time is as fast as all texts at once)."""
    if not texts:
        return []
    if not cuts_exactly(model):
        return _encode_lengths(list(texts), model)
    known = {} if words is None else words
    lines_of = [LINE_CUT.split(t) for t in texts]
    line_index = _index(lines_of)
    words_of = [WORD_CUT.split(line) for line in line_index]
    new = [w for w in _index(words_of) if w not in known]
    known.update(zip(new, _encode_lengths(new, model), strict=True))
    line_len = [sum(known[w] for w in ws) for ws in words_of]
    return [sum(line_len[line_index[line]] for line in ls) for ls in lines_of]


def _index(groups: list[list[str]]) -> dict[str, int]:
    """Each distinct string of `groups` numbered in order of first appearance."""
    index: dict[str, int] = {}
    for group in groups:
        for item in group:
            if item not in index:
                index[item] = len(index)
    return index


def render_chats(chats: Sequence[Sequence[Message]], model: str | None = None) -> list[str]:
    """Chats as the trainer's text: the model's chat template, or role-prefixed lines if it has none.

    The template is rendered once per sequence of roles with placeholder contents, and each chat is that frame
    with its contents put in, checked against a full render of the first chat of each sequence of roles (a
    template that rewrites contents fails the check and every chat is rendered in full). Rendering thousands of
    chats through jinja one by one would take longer than counting their tokens.
    """
    tok = load_tokenizer(model)
    if not getattr(tok, "chat_template", None):
        return ["\n".join(f"{m['role']}: {m['content']}" for m in chat) for chat in chats]
    frames: dict[tuple[str, ...], list[str] | None] = {}
    out = []
    for chat in chats:
        roles = tuple(m["role"] for m in chat)
        if roles not in frames:
            frame = _frame(tok, roles)
            if frame is not None and _fill(frame, chat) != tok.apply_chat_template(list(chat), tokenize=False):
                frame = None
            frames[roles] = frame
        frame = frames[roles]
        out.append(_fill(frame, chat) if frame is not None else tok.apply_chat_template(list(chat), tokenize=False))
    return out


def _frame(tok: Any, roles: tuple[str, ...]) -> list[str] | None:
    """The template's text around each message content, for one sequence of roles (None if it cannot be cut)."""
    marks = [f"\x00{i}\x00" for i in range(len(roles))]
    text = tok.apply_chat_template([{"role": r, "content": m} for r, m in zip(roles, marks, strict=True)], tokenize=False)
    parts = []
    for mark in marks:
        head, found, text = text.partition(mark)
        if not found or mark in text:
            return None
        parts.append(head)
    return [*parts, text]


def _fill(frame: list[str], chat: Sequence[Message]) -> str:
    pieces = [frame[0]]
    for message, after in zip(chat, frame[1:], strict=True):
        pieces += [message["content"], after]
    return "".join(pieces)


def count_chats(
    chats: Sequence[Sequence[Message]], model: str | None = None, words: dict[str, int] | None = None
) -> list[int]:
    """Tokens in each chat as the model sees it for training (template markup included); `words` as in
    `count_texts`."""
    if not chats:
        return []
    return count_texts(render_chats(chats, model), model, words)


__all__ = ["count_chats", "count_texts", "cuts_exactly", "load_tokenizer", "render_chats"]
