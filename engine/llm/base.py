"""The one interface every model backend implements: chat, streaming chat and batched chat.

Persuaders and simulated humans talk to a `Backend` only, so the same player runs on Claude, OpenAI, an
OpenAI-compatible server (vLLM, llama.cpp, Ollama) or a local transformers model. Every call returns a
`ChatResult` carrying the text with its usage tokens, latency and estimated cost, which the players put on each
turn (`PersuaderTurn.usage`, `TargetReply.usage`) and the store keeps.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from engine.errors import LabError

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": ...}
TextCallback = Callable[[str], None]


@dataclass
class ChatResult:
    """One model answer and what it cost."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    model: str = ""

    def usage(self) -> dict[str, Any]:
        """The dict stored with a turn (never holds a key or a prompt)."""
        return {
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "latency_ms": round(self.latency_ms, 1),
            "cost_usd": round(self.cost_usd, 6),
        }


def combine_usage(results: Sequence[ChatResult]) -> dict[str, Any]:
    """Usage of several calls made for one turn (a repair, a re-ask): summed, with the number of calls."""
    out = {
        "model": results[-1].model if results else "",
        "input_tokens": sum(r.input_tokens for r in results),
        "output_tokens": sum(r.output_tokens for r in results),
        "latency_ms": round(sum(r.latency_ms for r in results), 1),
        "cost_usd": round(sum(r.cost_usd for r in results), 6),
    }
    if len(results) > 1:
        out["calls"] = len(results)
    return out


@dataclass(frozen=True)
class GenerationOptions:
    """Sampling settings shared by every backend; hashable so a batcher can group equal requests."""

    max_tokens: int = 400
    temperature: float = 0.7
    stop: tuple[str, ...] = ()


class Backend(abc.ABC):
    """A chat model. Implementations are thread-safe: several games may call one backend at once."""

    provider: str = ""
    model: str = ""
    structured_output: bool = False  # whether `chat_structured` can hold a reply to a JSON schema (APIs)
    grammar_output: bool = False  # whether `chat_grammar` can decode a reply under a Lark grammar (local models)


    @abc.abstractmethod
    def chat(self, messages: list[Message], options: GenerationOptions | None = None) -> ChatResult:
        """One answer to a conversation (system message first, if any)."""

    def chat_stream(
        self, messages: list[Message], on_text: TextCallback, options: GenerationOptions | None = None
    ) -> ChatResult:
        """Like `chat`, calling `on_text` with each piece of text as it arrives. Default: one piece at the end."""
        result = self.chat(messages, options)
        on_text(result.text)
        return result

    def chat_structured(
        self, messages: list[Message], schema: dict[str, Any], options: GenerationOptions | None = None
    ) -> ChatResult:
        """One answer that follows the JSON `schema`, as JSON text (the API enforces it, not a prompt)."""
        raise LabError(f"{self.describe()} has no structured output: leave out structured=1")

    def check_grammar(self, grammar: str) -> None:
        """A LabError naming the cause when `grammar` cannot be used: called before a game starts."""
        raise LabError(f"{self.describe()} cannot decode under a grammar")

    def chat_grammar(
        self,
        messages: list[Message],
        grammar: str,
        options: GenerationOptions | None = None,
        on_text: TextCallback | None = None,
    ) -> ChatResult:
        """One answer whose every token the Lark `grammar` allows (local models, where decoding is ours);
        streamed to `on_text` when given."""
        raise LabError(f"{self.describe()} cannot decode under a grammar")

    def chat_batch(
        self, conversations: Sequence[list[Message]], options: GenerationOptions | None = None
    ) -> list[ChatResult]:
        """Answers to several conversations. Remote APIs: concurrent requests; local models: one generate call."""
        if len(conversations) <= 1:
            return [self.chat(c, options) for c in conversations]
        with ThreadPoolExecutor(max_workers=min(8, len(conversations))) as pool:
            return list(pool.map(lambda c: self.chat(c, options), conversations))

    def describe(self) -> str:
        return f"{self.provider}:{self.model}"


_CANCEL = threading.local()  # the event that cancels this thread's model calls, see `cancel_on`


@contextmanager
def cancel_on(event: threading.Event) -> Iterator[None]:
    """Model calls made by this thread inside the block stop when `event` is set, and raise KeyboardInterrupt.

    A thread-local rather than a parameter, so the players between a game's loop and its backend need no change:
    the Arena wraps a game in it and sets the event on Escape. A local model checks it at every token (its
    `generate` would otherwise write the whole reply in the background); an API stream is already closed by the
    KeyboardInterrupt its `on_text` raises.
    """
    previous = getattr(_CANCEL, "event", None)
    _CANCEL.event = event
    try:
        yield
    finally:
        _CANCEL.event = previous


def current_cancel() -> threading.Event | None:
    """The event set up by `cancel_on` for the calling thread, if any."""
    return getattr(_CANCEL, "event", None)


SCHEMA_NAME = "persuader_reply"  # the name an API is given for a reply schema (OpenAI's format, Claude's tool)


def split_system(messages: list[Message]) -> tuple[str, list[Message]]:
    """The system text and the rest: the Anthropic API takes the system prompt apart from the messages."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return system, [m for m in messages if m["role"] != "system"]


def api_error(provider: str, model: str, exc: Exception) -> LabError:
    """A failed call (after the SDK's retries) as one readable line; SDK messages never include the key."""
    status = getattr(exc, "status_code", None)
    what = f"HTTP {status}" if status else type(exc).__name__
    detail = str(getattr(exc, "message", "") or exc).splitlines()[0][:300]
    hint = ""
    if status == 401:
        hint = " (check the API key)"
    elif status == 429:
        hint = " (rate limited: wait, or lower the number of concurrent games)"
    elif status is None:
        hint = " (network error or time-out, after retries)"
    return LabError(f"{provider} request for {model} failed: {what}: {detail}{hint}")
