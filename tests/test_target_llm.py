"""The language-model simulated human, through the real SDKs and a local fake API."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fake_api import FakeAPI, point_sdks_at

from engine.game.episode import play
from engine.game.interfaces import Statement
from engine.game.moves import Move, disclose
from engine.players.persuaders.baselines import RevealAll
from engine.players.registry import make_target, target_names
from engine.players.targets.llm import LLMTarget, parse_target_reply
from engine.store import StoreListener


@pytest.fixture
def api(monkeypatch):
    with FakeAPI("I see, that matters to me.\nPREFERS: cost -1\nCHOICE: B") as server:
        point_sdks_at(server, monkeypatch)
        yield server


def started(spec: str, scenario, personality="skeptical") -> LLMTarget:
    target = make_target(spec)
    target.start(scenario, personality, 0)
    return target


def test_system_prompt_holds_role_personality_preferences_and_knowledge(api, business):
    target = started("openai:gpt-4o-mini", business)
    reply = target.respond("Hello! Which do you like?", [Move("ask_choice")], 1)
    system = api.bodies()[0]["messages"][0]["content"]
    assert business.target_role in system and "skeptical" in system and "CHOICE: X" in system
    for attr in business.attributes:
        assert f"({attr.id})" in system
    for fact in business.target_knows:
        assert business.fact_sentence(fact) in system
    assert reply.text == "I see, that matters to me."
    assert Statement("choice", "B") in reply.statements and Statement("preference", "cost", -1) in reply.statements
    assert reply.usage["input_tokens"] > 0 and target.favourite == "B"


def test_disclosures_grow_knowledge_and_choice_is_stated_only_when_asked(api, business):
    target = started("openai:gpt-4o-mini", business)
    new = next(f for f in business.facts if f not in business.target_knows)
    reply = target.respond("Consider this.", [disclose(new)], 1)
    assert new in target.knows and Statement("accepted", f"{new[0]}.{new[1]}", 1) in reply.statements
    assert not any(s.kind == "choice" for s in reply.statements)
    assert target.state()["favourite"] == "B"  # recorded for scoring all the same
    target.respond("And?", [], 2)
    second = api.bodies()[1]["messages"]
    assert business.fact_sentence(new) in second[0]["content"]  # the system prompt now lists it as known
    assert second[1]["content"].endswith(f"({'They state as facts: ' + business.fact_sentence(new)}.)")
    assert second[2] == {"role": "assistant", "content": "I see, that matters to me.\nCHOICE: B"}


def test_reply_without_choice_is_asked_again_once(api, business):
    answers = iter(["Hmm, let me think.", "CHOICE: C", "No idea.", "Still no idea."])
    api.responder = lambda _body: next(answers)
    target = started("anthropic:claude-sonnet-4-6", business)
    reply = target.respond("What do you think?", [Move("ask_choice")], 1)
    assert reply.text == "Hmm, let me think." and Statement("choice", "C") in reply.statements
    assert "End your reply with the line CHOICE" in api.bodies()[1]["messages"][-1]["content"]
    assert reply.usage["calls"] == 2
    choice, _words = target.choose()  # two replies without a choice: the last stated favourite stands
    assert choice == "C" and len(api.requests) == 4


def test_alias_plays_a_whole_game_and_the_store_keeps_target_usage(api, business, store):
    api.responder = lambda body: "Fine, I choose B.\nCHOICE: B" if "final decision" in str(body) else "Noted.\nCHOICE: A"
    assert "claude-sonnet-4" in target_names()
    target = make_target("claude-sonnet-4")
    episode = play(replace(business, max_turns=2), RevealAll(), target, listeners=[StoreListener(store)])
    assert episode.status == "finished" and episode.target.kind == "claude-sonnet-4"
    assert episode.outcome.choice == "B" and episode.outcome.final_words == "Fine, I choose B."
    assert {b["model"] for b in api.bodies()} == {"claude-sonnet-4-6"}
    assert '"input_tokens"' in store.turns(episode.id)[0]["target_usage_json"]


def test_interrupted_game_keeps_finished_turns(api, business, store):
    target = make_target("openai:gpt-4o-mini")
    original, calls = target.backend.chat, []

    def chat(messages, options=None):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while waiting on the model in turn 2
        return original(messages, options)

    target.backend.chat = chat
    with pytest.raises(KeyboardInterrupt):
        play(replace(business, max_turns=4), RevealAll(), target, listeners=[StoreListener(store)])
    session = store.list_sessions()[0]
    assert session["status"] == "interrupted" and len(store.turns(session["id"])) == 1


def test_parse_target_reply_handles_inline_and_unknown_ids(business):
    parsed = parse_target_reply("Sure **CHOICE: b** PREFERS: cost +1; colour -1", business)
    assert parsed.choice == "B" and parsed.preferences == [Statement("preference", "cost", 1)]
    assert parsed.text == "Sure"
    assert parse_target_reply("CHOICE: Z", business).choice is None


def test_local_target_spec_parses_without_loading(monkeypatch):
    from engine.errors import LabError

    with pytest.raises(LabError, match="no model folder"):
        make_target("local:/nonexistent/model")
    with pytest.raises(LabError, match="persuaders"):
        make_target("openai-compatible:http://127.0.0.1:9/v1:m?belief=self")
