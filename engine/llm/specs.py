"""Model specs as the CLI takes them, turned into backends.

    openai:MODEL                      OpenAI (OPENAI_API_KEY)
    anthropic:MODEL                   Claude (ANTHROPIC_API_KEY)
    openai-compatible:URL:MODEL       vLLM, llama.cpp server, Ollama: URL is the server's /v1 base URL
    local[:PATH[+ADAPTER]]            transformers; '' or 'embedded' is the embedded SmolLM2-135M-Instruct
    claude-sonnet-4, gpt-4o, ...      aliases from engine.llm.catalog

Any spec may end with options after '?', joined by '&' (the grammar is `engine.players.spec`): `belief=tracker|self`,
`reply=full|compact|moves` (the reply format the model was trained on), `fresh=0|1` (structured output without the moves the target has answered for good) and `structured=0|1` (persuaders: replies held to
the turn's moves by the API's JSON schema, on by default for OpenAI and Claude), `max_tokens=N`, `temperature=T`, `4bit=1` (local models on CUDA), `dtype=float32|bfloat16|float16|int8` (`auto`: float32 on a CPU, bfloat16 on a GPU),
`engine=auto|transformers|llama.cpp` (local models), e.g. `local:models/sft?belief=self&temperature=0.3`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import LabError
from engine.llm.base import Backend, GenerationOptions
from engine.llm.catalog import resolve
from engine.players.spec import PlayerSpec, parse

SETTINGS = ("max_tokens", "temperature", "4bit", "dtype", "engine")  # how the model runs, not which player it is
OPTION_NAMES = ("belief", "reply", "structured", "fresh", "conclude", "disclose", *SETTINGS)
PROVIDERS = {  # the player kinds a model backs, in either role, with their `play --list` help
    "local": "local model: local (the embedded SmolLM2) or local:PATH[+ADAPTER]",
    "openai": "OpenAI model, e.g. openai:gpt-4o (OPENAI_API_KEY)",
    "anthropic": "Claude, e.g. anthropic:claude-sonnet-4-6 (ANTHROPIC_API_KEY)",
    "openai-compatible": "vLLM/llama.cpp/Ollama: openai-compatible:URL:MODEL",
}
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


def parse_spec(provider: str, arg: str) -> ModelSpec:
    """`provider:arg` as a ModelSpec, options checked: for scripts and tests that hold a model spec's text."""
    spec = parse(f"{provider}:{arg}")
    for key in spec.options:
        if key not in OPTION_NAMES:
            raise LabError(f"unknown option '{key}' in '{spec}' (options: {', '.join(OPTION_NAMES)})")
    return model_spec(spec)


def model_spec(spec: PlayerSpec) -> ModelSpec:
    """The model a player spec names (`openai:gpt-4o`, `local:PATH+ADAPTER`, an alias such as `gpt-4o-mini`)."""
    from engine.llm.local import split_local_spec

    alias = resolve(spec.kind)
    provider, body = (alias.provider, alias.model) if alias else (spec.kind, spec.argument)
    options = dict(spec.options)
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
        engine=spec.options.get("engine", "auto"),
    )
