"""The Anthropic and OpenAI backends through the real SDKs, pointed at a local fake server by base URL."""

from __future__ import annotations

import pytest
from fake_api import FakeAPI

from engine.errors import LabError
from engine.llm.base import GenerationOptions
from engine.llm.catalog import estimate_cost, resolve
from engine.llm.specs import parse_spec

SECRET = "sk-test-do-not-log-7f3a"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi to the lab."}]


@pytest.fixture
def api(monkeypatch):
    with FakeAPI("Hello there, lab people") as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        yield server


def anthropic_backend():
    from engine.llm.anthropic_backend import AnthropicBackend

    return AnthropicBackend("claude-sonnet-4-6", max_retries=2)


def openai_backend():
    from engine.llm.openai_backend import OpenAIBackend

    return OpenAIBackend("gpt-4o-mini", max_retries=2)


@pytest.mark.parametrize("make", [anthropic_backend, openai_backend])
def test_chat_retries_429_and_500_then_succeeds(api, make):
    api.fail_with([429, 500])
    result = make().chat(MESSAGES, GenerationOptions(max_tokens=50, temperature=0.2))
    assert result.text == "Hello there, lab people"
    assert [r.status for r in api.requests] == [429, 500, 200]
    assert result.input_tokens > 0 and result.output_tokens == 4
    assert result.cost_usd == pytest.approx(estimate_cost(result.model, result.input_tokens, 4))
    assert result.cost_usd > 0 and result.latency_ms > 0


def test_anthropic_request_shape(api):
    anthropic_backend().chat(MESSAGES, GenerationOptions(max_tokens=50, temperature=0.2, stop=("END",)))
    req = api.requests[-1]
    assert req.path == "/v1/messages"
    assert req.body["system"] == "Be brief."
    assert req.body["messages"] == [{"role": "user", "content": "Say hi to the lab."}]
    assert req.body["max_tokens"] == 50 and req.body["stop_sequences"] == ["END"]
    assert any(SECRET in v for v in req.headers.values())  # the SDK read the key from the environment


def test_openai_request_shape(api):
    openai_backend().chat(MESSAGES, GenerationOptions(max_tokens=50))
    req = api.requests[-1]
    assert req.path == "/v1/chat/completions"
    assert req.body["messages"] == MESSAGES and req.body["max_completion_tokens"] == 50


@pytest.mark.parametrize("make", [anthropic_backend, openai_backend])
def test_streaming_delivers_pieces_and_usage(api, make):
    pieces: list[str] = []
    result = make().chat_stream(MESSAGES, pieces.append)
    assert len(pieces) == 4 and "".join(pieces) == result.text == "Hello there, lab people"
    assert result.output_tokens == 4 and result.input_tokens > 0


@pytest.mark.parametrize("make", [anthropic_backend, openai_backend])
def test_persistent_failure_is_a_clear_lab_error_without_the_key(api, make):
    api.fail_with([500, 500, 500])
    with pytest.raises(LabError) as err:
        make().chat(MESSAGES)
    assert "HTTP 500" in str(err.value) and SECRET not in str(err.value)
    assert len(api.requests) == 3  # one try + max_retries=2


def test_batch_answers_every_conversation(api):
    results = openai_backend().chat_batch([MESSAGES] * 3)
    assert [r.text for r in results] == ["Hello there, lab people"] * 3 and len(api.requests) == 3


def test_openai_compatible_needs_no_key_and_uses_its_url(api, monkeypatch):
    from engine.llm.specs import make_backend

    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    backend = make_backend(parse_spec("openai-compatible", f"{api.url}/v1:llama3.1:8b"))
    result = backend.chat(MESSAGES)
    assert result.text == "Hello there, lab people" and result.cost_usd == 0.0
    assert api.requests[-1].body["model"] == "llama3.1:8b" and api.requests[-1].body["max_tokens"] == 400


@pytest.mark.parametrize(("provider", "variable"), [("anthropic", "ANTHROPIC_API_KEY"), ("openai", "OPENAI_API_KEY")])
def test_missing_key_names_the_variable(monkeypatch, provider, variable):
    from engine.llm.specs import make_backend

    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(LabError, match=variable):
        make_backend(parse_spec(provider, "some-model"))


def test_specs_and_catalog():
    spec = parse_spec("openai-compatible", "http://localhost:11434/v1:llama3.1:8b?belief=self&temperature=0.2")
    assert (spec.base_url, spec.model, spec.options) == ("http://localhost:11434/v1", "llama3.1:8b", {"belief": "self", "temperature": "0.2"})
    assert spec.generation(GenerationOptions()).temperature == 0.2
    local = parse_spec("local", "models/base+models/lora?4bit=1")
    assert (local.model, local.adapter, local.options) == ("models/base", "models/lora", {"4bit": "1"})
    assert parse_spec("local", "").model == "" and parse_spec("local", "").adapter is None
    with pytest.raises(LabError, match="unknown option"):
        parse_spec("openai", "gpt-4o?colour=red")
    with pytest.raises(LabError, match="URL:MODEL"):
        parse_spec("openai-compatible", "llama3")
    assert resolve("claude-sonnet-4").provider == "anthropic"
    assert estimate_cost("gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(0.15)
    assert estimate_cost("claude-sonnet-4-5-20250929", 0, 1_000_000) == pytest.approx(15.0)
    assert estimate_cost("my-local-model", 1000, 1000) == 0.0
