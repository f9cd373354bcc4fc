"""The language-model persuader against the rule-based target, through the real SDKs and a local fake API."""

from __future__ import annotations

import json

import pytest
from fake_api import TEST_KEY, FakeAPI, point_sdks_at

from engine.errors import LabError
from engine.game.episode import play
from engine.players.persuaders.llm import read_belief, read_counterfactual
from engine.players.registry import make_persuader
from engine.players.targets.rational import RationalTarget
from engine.store import StoreListener

GOOD = (
    "REASONING: She may not know that B is cheap.\n"
    "COUNTERFACTUAL: disclose B.cost -> P(goal) 0.40 -> 0.70, predicted choice B; alternatives: ask_choice 0.45\n"
    "MOVES: disclose B.cost; ask_preference cost\n"
    "MESSAGE: Did you know B keeps the cost down? How much does cost matter to you?"
)
BAD = "MOVES: teleport B\nMESSAGE: Let us go to B, trust me."


def scripted(*texts: str):
    """A responder that answers with `texts` in turn, then repeats the last one."""
    seen = {"n": 0}

    def respond(_body):
        text = texts[min(seen["n"], len(texts) - 1)]
        seen["n"] += 1
        return text

    return respond


@pytest.fixture
def api(monkeypatch):
    with FakeAPI(GOOD) as server:
        point_sdks_at(server, monkeypatch)
        yield server


def short(scenario, turns=2):
    from dataclasses import replace

    return replace(scenario, max_turns=turns)


def test_hidden_condition_never_sends_the_targets_secrets(api, business):
    play(short(business), make_persuader("openai:gpt-4o"), RationalTarget(), condition="hidden", seed=1)
    sent = [r.raw for r in api.requests]
    assert len(sent) == 2
    assert not any("Target's preferences" in raw or "Target knows" in raw for raw in sent)
    prefs = ", ".join(f"{a} {v:+g}" for a, v in business.preferences.items())
    assert not any(prefs in json.loads(raw)["messages"][0]["content"] for raw in sent)
    # the same game revealed does send them: the check above can fail
    play(short(business), make_persuader("openai:gpt-4o"), RationalTarget(), condition="revealed", seed=1)
    assert prefs in json.loads(api.requests[-1].raw)["messages"][0]["content"]


def test_turn_is_parsed_with_tracker_belief_and_usage_stored(api, business, store):
    episode = play(short(business), make_persuader("anthropic:claude-sonnet-4-6"), RationalTarget(), listeners=[StoreListener(store)])
    assert episode.status == "finished"
    turn = episode.turns[0]
    assert [m.text() for m in turn.moves] == ["disclose B.cost", "ask_preference cost"]
    assert turn.parse_ok and turn.reasoning.startswith("She may not know")
    assert set(turn.belief.preferences) == set(business.attribute_ids)
    assert turn.counterfactual.model_dump(exclude_none=True) == {
        "move": "disclose B.cost", "p_goal_before": 0.4, "p_goal_after": 0.7, "predicted_choice": "B",
        "alternatives": [{"move": "ask_choice", "p_goal": 0.45}],
    }
    assert "Belief about the target" in api.bodies()[0]["messages"][-1]["content"]
    rows = store.turns(episode.id)
    usage = json.loads(rows[0]["usage_json"])
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0 and usage["cost_usd"] > 0
    assert usage["model"] == "claude-sonnet-4-6"
    store.close()
    from pathlib import Path

    assert TEST_KEY.encode() not in Path(store.path).read_bytes()  # keys never reach the store


def test_unparseable_reply_gets_one_repair(api, business):
    api.responder = scripted(BAD, GOOD)
    episode = play(short(business, 1), make_persuader("openai:gpt-4o?structured=0"), RationalTarget())
    turn = episode.turns[0]
    assert turn.parse_ok and len(turn.moves) == 2
    assert turn.usage["calls"] == 2 and turn.usage["repaired"] is True
    repair = api.bodies()[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": BAD}
    assert "could not be read: unknown move 'teleport'" in repair[-1]["content"]


def test_reply_still_bad_after_repair_is_logged_and_the_game_goes_on(api, business):
    api.responder = scripted(BAD)
    episode = play(short(business), make_persuader("openai:gpt-4o?structured=0"), RationalTarget())
    assert episode.status == "finished" and episode.outcome.parse_failures == 2
    turn = episode.turns[0]
    assert not turn.parse_ok and "teleport" in turn.parse_error and turn.moves == []
    assert turn.message == "Let us go to B, trust me." and "[repair:" in turn.raw
    assert len(api.requests) == 4  # two turns, each a try and one repair


def test_self_belief_is_read_from_the_reply(api, business):
    api.responder = scripted("BELIEF: cost -1 (0.8); travel like 0.2 neutral 0.3 dislike 0.5; predicted choice A\n" + GOOD)
    episode = play(short(business, 1), make_persuader("openai:gpt-4o?belief=self"), RationalTarget())
    belief = episode.turns[0].belief.model_dump(exclude_none=True)
    assert belief["preferences"]["cost"] == {"like": 0.1, "neutral": 0.1, "dislike": 0.8}
    assert belief["preferences"]["travel"] == {"like": 0.2, "neutral": 0.3, "dislike": 0.5}
    assert belief["predicted_choice"] == "A"
    assert "BELIEF" in api.bodies()[0]["messages"][0]["content"]
    assert episode.persuader.name == "openai:gpt-4o?belief=self"


def test_streaming_persuader_passes_text_as_it_comes(api, business):
    persuader = make_persuader("anthropic:claude-sonnet-4-6?structured=0")
    pieces: list[str] = []
    persuader.on_text = pieces.append
    episode = play(short(business, 1), persuader, RationalTarget())
    assert "".join(pieces) == GOOD and episode.turns[0].parse_ok
    assert api.bodies()[0]["stream"] is True


def test_bad_belief_option_and_readers():
    with pytest.raises(LabError, match="belief mode"):
        make_persuader("openai-compatible:http://127.0.0.1:9/v1:m?belief=psychic")
    from engine.game.scenario import ScenarioLibrary

    s = ScenarioLibrary().get("business_vacation")
    assert read_belief("", s) is None and read_counterfactual("", s) is None
    assert read_counterfactual("just a hunch", s) == {"move": "just a hunch"}


def test_embedded_model_plays_a_turn_for_real(business):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared busy CPU: one thread is several times faster
    try:
        persuader = make_persuader("local:embedded?max_tokens=40&temperature=0")
        episode = play(short(business, 1), persuader, RationalTarget())
    finally:
        torch.set_num_threads(threads)
    assert episode.status == "finished" and episode.persuader.name == "local:embedded"
    turn = episode.turns[0]
    assert turn.message and turn.usage["output_tokens"] > 0 and turn.usage["cost_usd"] == 0.0
    assert turn.parse_ok or (turn.parse_error and turn.usage["calls"] == 2)


# ----- structured output: the API holds the reply to the turn's schema ---------------------------------------
STRUCTURED = {
    "reasoning": "She may not know that B is cheap.",
    "counterfactual": "disclose B.cost -> P(goal) 0.40 -> 0.70",
    "moves": ["disclose B.cost=+1", "ask_preference cost"],
    "message": "B keeps the cost down. How much does cost matter to you?",
}


def test_openai_structured_is_on_by_default_with_the_turns_schema(api, business):
    api.responder = scripted(json.dumps(STRUCTURED))
    episode = play(short(business, 1), make_persuader("openai:gpt-4o"), RationalTarget())
    turn = episode.turns[0]
    assert turn.parse_ok and [m.text() for m in turn.moves] == ["disclose B.cost=+1", "ask_preference cost"]
    assert turn.message == STRUCTURED["message"] and turn.reasoning == STRUCTURED["reasoning"]
    assert turn.counterfactual.p_goal_after == 0.7 and "calls" not in turn.usage
    fmt = api.bodies()[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["required"] == ["reasoning", "counterfactual", "moves", "message"]
    moves = schema["properties"]["moves"]["items"]["enum"]
    discloses = [m for m in moves if m.startswith("disclose")]
    # only true disclosures: one per fact, with the scenario's own effect
    assert len(discloses) == 9 and "disclose B.cost=+1" in discloses and "disclose A.cost=+1" not in discloses
    assert {"ask_preference travel", "ask_knowledge C.bonding", "ask_choice", "appeal", "conclude"} <= set(moves)


def test_claude_structured_is_a_forced_tool_call(api, business):
    api.responder = scripted(json.dumps(STRUCTURED))
    persuader = make_persuader("anthropic:claude-sonnet-4-6")
    pieces: list[str] = []
    persuader.on_text = pieces.append  # a structured reply is not streamed: the reader gets it whole, as text
    episode = play(short(business, 1), persuader, RationalTarget())
    turn = episode.turns[0]
    assert turn.parse_ok and len(turn.moves) == 2 and turn.message == STRUCTURED["message"]
    body = api.bodies()[0]
    assert body["tool_choice"] == {"type": "tool", "name": body["tools"][0]["name"]} and "stream" not in body
    assert body["tools"][0]["input_schema"]["properties"]["moves"]["items"]["enum"][0].startswith("disclose A.")
    assert len(pieces) == 1 and pieces[0].startswith("REASONING:") and "MOVES: disclose B.cost=+1" in pieces[0]


def test_structured_reply_that_breaks_the_schema_gets_the_repair(api, business):
    bad = json.dumps({**STRUCTURED, "moves": ["teleport B"]})
    api.responder = scripted(bad, json.dumps(STRUCTURED))
    turn = play(short(business, 1), make_persuader("openai:gpt-4o"), RationalTarget()).turns[0]
    assert turn.parse_ok and turn.usage["calls"] == 2 and turn.usage["repaired"] is True
    assert "unknown move 'teleport'" in api.bodies()[1]["messages"][-1]["content"]
    assert "response_format" in api.bodies()[1]


def test_compatible_servers_are_free_text_unless_asked(api, business):
    url = f"openai-compatible:{api.url}/v1:llama3"
    play(short(business, 1), make_persuader(url), RationalTarget())
    assert "response_format" not in api.bodies()[-1]
    turn = play(short(business, 1), make_persuader(url + "?structured=1"), RationalTarget()).turns[0]
    assert api.bodies()[-1]["response_format"]["type"] == "json_schema" and turn.parse_ok


def test_compact_reply_format_in_prompt_schema_and_name(api, business):
    api.responder = scripted(json.dumps({"moves": ["ask_choice"], "message": "Which one?"}))
    persuader = make_persuader("openai:gpt-4o?reply=compact")
    episode = play(short(business, 1), persuader, RationalTarget())
    assert episode.turns[0].parse_ok and [m.text() for m in episode.turns[0].moves] == ["ask_choice"]
    body = api.bodies()[0]
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["moves", "message"]
    assert "Reply with MOVES, MESSAGE (MESSAGE: one or two sentences)." in body["messages"][0]["content"]
    assert episode.persuader.name == "openai:gpt-4o?reply=compact"


def test_moves_reply_format_renders_the_message_from_the_moves(api, business):
    """`?reply=moves`: the model writes only MOVES; the message says exactly those moves, in the planner's words."""
    api.responder = scripted(json.dumps({"moves": ["disclose B.cost", "ask_choice"]}))
    persuader = make_persuader("openai:gpt-4o?reply=moves")
    turn = play(short(business, 1), persuader, RationalTarget(), seed=3).turns[0]
    body = api.bodies()[0]
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["moves"]
    assert "Reply with MOVES. MOVES: any of" in body["messages"][0]["content"]
    assert turn.parse_ok and [m.text() for m in turn.moves] == ["disclose B.cost", "ask_choice"]
    assert turn.raw == json.dumps({"moves": ["disclose B.cost", "ask_choice"]})
    assert business.fact_sentence(("B", "cost")) in turn.message and "MOVES" not in turn.message
    assert persuader.name == "openai:gpt-4o?reply=moves"
    api.responder = scripted(json.dumps({"moves": ["ask_preference cost", "ask_choice"]}))
    play(short(business, 2), make_persuader("openai:gpt-4o?reply=moves"), RationalTarget())
    enums = [b["response_format"]["json_schema"]["schema"]["properties"]["moves"]["items"]["enum"]
             for b in api.bodies()[-2:]]
    assert "ask_preference cost" in enums[0] and "ask_preference cost" not in enums[1]  # answered: not asked again
    api.responder = scripted("I think B is best.", "MOVES: ask_choice")  # free text: repaired into MOVES
    turn = play(short(business, 1), make_persuader("openai:gpt-4o?reply=moves&structured=0"), RationalTarget()).turns[0]
    assert "no MOVES section" in api.bodies()[-1]["messages"][-1]["content"]
    assert turn.parse_ok and [m.text() for m in turn.moves] == ["ask_choice"] and turn.message.endswith("?")


def test_bad_reply_and_structured_options_are_clear_errors(api):
    with pytest.raises(LabError, match="unknown reply format 'short'"):
        make_persuader("openai:gpt-4o?reply=short")
    with pytest.raises(LabError, match="write fresh=1 or fresh=0"):
        make_persuader("openai:gpt-4o?fresh=maybe")
    with pytest.raises(LabError, match="structured=1 or structured=0"):
        make_persuader("openai:gpt-4o?structured=maybe")
    with pytest.raises(LabError, match="disclose=maybe: unknown"):
        make_persuader("openai:gpt-4o?disclose=maybe")
    held = make_persuader("openai:gpt-4o?conclude=stated&disclose=stated")
    assert (held.conclude, held.disclose) == ("stated", "stated") and held.name.endswith("conclude=stated&disclose=stated")
