"""Model specs as the CLI takes them, turned into backends.

    openai:MODEL                      OpenAI (OPENAI_API_KEY)
    anthropic:MODEL                   Claude (ANTHROPIC_API_KEY)
    openai-compatible:URL:MODEL       vLLM, llama.cpp server, Ollama: URL is the server's /v1 base URL
    local[:PATH[+ADAPTER]]            transformers; '' or 'embedded' is the embedded SmolLM2-135M-Instruct
    claude-sonnet-4, gpt-4o, ...      aliases from engine.llm.catalog

Any spec may end with options after '?', joined by '&': `belief=tracker|self` (persuaders), `max_tokens=N`,
`temperature=T`, `4bit=1` (local models on CUDA), `dtype=float32|bfloat16|float16` (local models), e.g. `local:models/sft?belief=self&temperature=0.3`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import LabError
from engine.llm.base import Backend, GenerationOptions

OPTION_NAMES = ("belief", "max_tokens", "temperature", "4bit", "dtype")
_COMPATIBLE = re.compile(r"^(https?://[^/:\s]+(?::\d+)?(?:/[^:\s]*)?):(.+)$")


@dataclass
class ModelSpec:
    provider: str  # anthropic | openai | openai-compatible | local
    model: str  # the model id, or for local the folder ('' = embedded)
    base_url: str | None = None
    adapter: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    def generation(self, default: GenerationOptions) -> GenerationOptions:
        """The spec's max_tokens/temperature over a player's defaults."""
        try:
            max_tokens = int(self.options.get("max_tokens", default.max_tokens))
            temperature = float(self.options.get("temperature", default.temperature))
        except ValueError as exc:
            raise LabError(f"model spec option: {exc}") from None
        return GenerationOptions(max_tokens, temperature, default.stop)


def split_options(arg: str) -> tuple[str, dict[str, str]]:
    body, sep, query = arg.partition("?")
    options: dict[str, str] = {}
    if sep:
        for part in filter(None, query.split("&")):
            key, _, value = part.partition("=")
            if key not in OPTION_NAMES:
                raise LabError(f"unknown option '{key}' in '{arg}' (options: {', '.join(OPTION_NAMES)})")
            options[key] = value
    return body, options


def parse_spec(provider: str, arg: str) -> ModelSpec:
    """The text after `provider:` (what a player factory receives) as a ModelSpec."""
    from engine.llm.local import split_local_spec

    body, options = split_options(arg)
    if provider == "local":
        path, adapter = split_local_spec(body)
        return ModelSpec("local", path, adapter=adapter, options=options)
    if provider == "openai-compatible":
        m = _COMPATIBLE.match(body)
        if not m:
            raise LabError(
                f"openai-compatible:{body}: write it as openai-compatible:URL:MODEL, "
                "e.g. openai-compatible:http://localhost:8000/v1:meta-llama/Llama-3.1-8B-Instruct"
            )
        return ModelSpec(provider, m.group(2), base_url=m.group(1), options=options)
    if provider in ("openai", "anthropic"):
        if not body:
            raise LabError(f"{provider}: name the model, e.g. {provider}:{'gpt-4o' if provider == 'openai' else 'claude-sonnet-4-6'}")
        return ModelSpec(provider, body, options=options)
    raise LabError(f"unknown model provider '{provider}'")


def make_backend(spec: ModelSpec) -> Backend:
    """A ready backend: keys checked now (before any game starts); local models shared for batching."""
    if spec.provider == "anthropic":
        from engine.llm.anthropic_backend import AnthropicBackend

        return AnthropicBackend(spec.model)
    if spec.provider in ("openai", "openai-compatible"):
        from engine.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(spec.model, base_url=spec.base_url)
    from engine.llm.local import shared_backend

    return shared_backend(
        spec.model,
        spec.adapter,
        load_in_4bit=spec.options.get("4bit", "") in ("1", "true", "yes"),
        dtype=spec.options.get("dtype", "auto"),
    )
