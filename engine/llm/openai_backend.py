"""OpenAI and OpenAI-compatible servers (vLLM, llama.cpp server, Ollama) through the `openai` SDK.

For OpenAI itself the key comes from OPENAI_API_KEY, checked when the backend is made (before a game starts),
and OPENAI_BASE_URL is honoured by the SDK. An OpenAI-compatible server is given its base URL explicitly and
needs no key (OPENAI_API_KEY is sent when set, since some servers check one). The SDK retries rate limits,
server errors and time-outs with exponential backoff (`max_retries`); what still fails becomes a LabError.
"""

from __future__ import annotations

import os
import time
from typing import Any

from engine.errors import LabError
from engine.llm.base import SCHEMA_NAME, Backend, ChatResult, GenerationOptions, Message, TextCallback, api_error
from engine.llm.catalog import estimate_cost

KEY_VARIABLE = "OPENAI_API_KEY"


class OpenAIBackend(Backend):
    structured_output = True  # OpenAI's JSON-schema response format; compatible servers vary (vLLM, llama.cpp have it)

    def __init__(
        self, model: str, *, base_url: str | None = None, max_retries: int = 4, timeout: float = 120.0
    ) -> None:
        import openai

        self.model = model
        self.compatible = base_url is not None
        self.provider = "openai-compatible" if self.compatible else "openai"
        self._sdk = openai
        if self.compatible:
            key = os.environ.get(KEY_VARIABLE) or "not-needed"
            self.client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=max_retries, timeout=timeout)
        else:
            if not os.environ.get(KEY_VARIABLE):
                raise LabError(f"openai:{model} needs an API key: set the environment variable {KEY_VARIABLE}")
            self.client = openai.OpenAI(max_retries=max_retries, timeout=timeout)

    def _request(self, messages: list[Message], options: GenerationOptions) -> dict:
        kwargs: dict = {"model": self.model, "messages": messages, "temperature": options.temperature}
        # OpenAI's newer models take only max_completion_tokens; compatible servers know max_tokens.
        kwargs["max_tokens" if self.compatible else "max_completion_tokens"] = options.max_tokens
        if options.stop:
            kwargs["stop"] = list(options.stop)
        return kwargs

    def _result(self, text: str, usage, model: str | None, started: float) -> ChatResult:
        tokens_in = getattr(usage, "prompt_tokens", 0) or 0
        tokens_out = getattr(usage, "completion_tokens", 0) or 0
        return ChatResult(
            text=text,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            cost_usd=0.0 if self.compatible else estimate_cost(self.model, tokens_in, tokens_out),
            model=model or self.model,
        )

    def chat(self, messages: list[Message], options: GenerationOptions | None = None) -> ChatResult:
        return self._chat(self._request(messages, options or GenerationOptions()))

    def chat_structured(
        self, messages: list[Message], schema: dict[str, Any], options: GenerationOptions | None = None
    ) -> ChatResult:
        """The reply as JSON text held to `schema` by the JSON-schema response format in strict mode."""
        strict = {"name": SCHEMA_NAME, "schema": schema, "strict": True}
        request = self._request(messages, options or GenerationOptions())
        return self._chat({**request, "response_format": {"type": "json_schema", "json_schema": strict}})

    def _chat(self, request: dict[str, Any]) -> ChatResult:
        started = time.perf_counter()
        try:
            response = self.client.chat.completions.create(**request)
        except self._sdk.APIError as exc:
            raise api_error(self._label(), self.model, exc) from None
        text = response.choices[0].message.content or "" if response.choices else ""
        return self._result(text, response.usage, response.model, started)

    def chat_stream(
        self, messages: list[Message], on_text: TextCallback, options: GenerationOptions | None = None
    ) -> ChatResult:
        options = options or GenerationOptions()
        started = time.perf_counter()
        pieces: list[str] = []
        usage = None
        model = None
        try:
            stream = self.client.chat.completions.create(
                **self._request(messages, options), stream=True, stream_options={"include_usage": True}
            )
            with stream:  # closed however the loop ends: a cancel (on_text raising) hangs up, the server stops
                for chunk in stream:
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices:
                        piece = choice.delta.content if choice.delta else None
                        if piece:
                            pieces.append(piece)
                            on_text(piece)
        except self._sdk.APIError as exc:
            raise api_error(self._label(), self.model, exc) from None
        return self._result("".join(pieces), usage, model, started)

    def _label(self) -> str:
        return "OpenAI-compatible server" if self.compatible else "OpenAI"
