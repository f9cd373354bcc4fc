"""Claude through the `anthropic` SDK.

The key comes from ANTHROPIC_API_KEY and is checked when the backend is made, i.e. before a game starts; the
SDK itself honours ANTHROPIC_BASE_URL (how the tests point it at a local fake server) and retries rate limits,
server errors and time-outs with exponential backoff (`max_retries`). What still fails becomes a LabError
whose message never contains the key.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from engine.errors import LabError
from engine.llm.base import (
    SCHEMA_NAME,
    Backend,
    ChatResult,
    GenerationOptions,
    Message,
    TextCallback,
    api_error,
    split_system,
)
from engine.llm.catalog import estimate_cost

KEY_VARIABLE = "ANTHROPIC_API_KEY"


class AnthropicBackend(Backend):
    provider = "anthropic"
    structured_output = True  # a forced tool call whose input schema is the reply's

    def __init__(self, model: str, *, max_retries: int = 4, timeout: float = 120.0) -> None:
        if not os.environ.get(KEY_VARIABLE):
            raise LabError(f"anthropic:{model} needs an API key: set the environment variable {KEY_VARIABLE}")
        import anthropic

        self.model = model
        self._sdk = anthropic
        # api_key and base_url are read by the SDK from the environment, so neither is ever copied here.
        self.client = anthropic.Anthropic(max_retries=max_retries, timeout=timeout)

    def _request(self, messages: list[Message], options: GenerationOptions) -> dict:
        system, rest = split_system(messages)
        kwargs: dict = {
            "model": self.model,
            "messages": rest,
            "max_tokens": options.max_tokens,
        }  # no temperature: this SDK's Messages API no longer takes sampling parameters
        if system:
            kwargs["system"] = system
        if options.stop:
            kwargs["stop_sequences"] = list(options.stop)
        return kwargs

    def _result(self, message, started: float) -> ChatResult:
        """The text blocks, or for a forced tool call its input as JSON text."""
        tool = next((block for block in message.content if getattr(block, "type", "") == "tool_use"), None)
        text = json.dumps(tool.input) if tool is not None else "".join(getattr(b, "text", "") for b in message.content)
        usage = message.usage
        return ChatResult(
            text=text,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            cost_usd=estimate_cost(self.model, usage.input_tokens, usage.output_tokens),
            model=message.model or self.model,
        )

    def chat(self, messages: list[Message], options: GenerationOptions | None = None) -> ChatResult:
        return self._chat(self._request(messages, options or GenerationOptions()))

    def chat_structured(
        self, messages: list[Message], schema: dict[str, Any], options: GenerationOptions | None = None
    ) -> ChatResult:
        """The reply as JSON text: Claude must call one tool whose input schema is `schema` (forced tool choice)."""
        tool = {"name": SCHEMA_NAME, "description": "Write your reply for this turn.", "input_schema": schema}
        request = self._request(messages, options or GenerationOptions())
        return self._chat({**request, "tools": [tool], "tool_choice": {"type": "tool", "name": SCHEMA_NAME}})

    def _chat(self, request: dict[str, Any]) -> ChatResult:
        started = time.perf_counter()
        try:
            message = self.client.messages.create(**request)
        except self._sdk.APIError as exc:
            raise api_error("Anthropic", self.model, exc) from None
        return self._result(message, started)

    def chat_stream(
        self, messages: list[Message], on_text: TextCallback, options: GenerationOptions | None = None
    ) -> ChatResult:
        options = options or GenerationOptions()
        started = time.perf_counter()
        try:
            with self.client.messages.stream(**self._request(messages, options)) as stream:
                for piece in stream.text_stream:
                    on_text(piece)
                message = stream.get_final_message()
        except self._sdk.APIError as exc:
            raise api_error("Anthropic", self.model, exc) from None
        return self._result(message, started)

