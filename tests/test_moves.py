"""The move syntax: parsing, checking against a scenario, and whole-reply parsing that never raises."""

from __future__ import annotations

import pytest

from engine.game.moves import Move, MoveSyntaxError, format_reply, parse_move, parse_moves, parse_reply


def test_each_move_kind_round_trips(business):
    texts = ["disclose A.cost=-1", "disclose B.travel", "ask_preference cost", "ask_knowledge C.bonding",
             "ask_choice", "appeal", "conclude"]
    moves = parse_moves("; ".join(texts), business)
    assert [m.text() for m in moves] == texts
    assert [m.is_mental_state_appeal for m in moves] == [False, False, True, True, True, False, False]


@pytest.mark.parametrize(
    "text, message",
    [
        ("shout A.cost", "unknown move 'shout'"),
        ("disclose Z.cost", "unknown fact 'Z.cost'"),
        ("disclose A.cost=+2", "must be \\+1, 0 or -1"),
        ("ask_preference speed", "unknown attribute 'speed'"),
        ("ask_choice now", "takes no argument"),
        ("disclose", "needs an argument"),
        ("ask_knowledge cost", "not a fact"),
    ],
)
def test_bad_moves_say_why(business, text, message):
    with pytest.raises(MoveSyntaxError, match=message):
        parse_move(text, business)


def test_brackets_and_newlines_are_accepted():
    assert parse_moves("[ask_choice]\n[disclose A.cost=+1]") == [Move("ask_choice"), parse_move("disclose A.cost=+1")]


def test_reply_round_trip(business):
    moves = parse_moves("disclose A.cost=-1; ask_preference bonding", business)
    text = format_reply("Lisbon is cheaper. Do you value bonding?", moves, "cost matters", "x -> 0.4 -> 0.7")
    reply = parse_reply(text, business)
    assert reply.ok and reply.moves == moves
    assert reply.message == "Lisbon is cheaper. Do you value bonding?"
    assert reply.reasoning == "cost matters"


def test_moves_format_has_no_message(business):
    """The `moves` reply format: MOVES alone reads back; without MOVES the reply says so."""
    moves = parse_moves("disclose A.cost=-1; ask_choice", business)
    text = format_reply(None, moves)
    assert text == "MOVES: disclose A.cost=-1; ask_choice"
    reply = parse_reply(text, business, with_message=False)
    assert reply.ok and reply.moves == moves and reply.message == ""
    assert not parse_reply(text, business).ok  # a format with a MESSAGE still needs one
    bad = parse_reply("I think A is best.", business, with_message=False)
    assert not bad.ok and bad.error == "no MOVES section"


def test_unlabelled_text_is_a_message_without_moves():
    reply = parse_reply("Lisbon is lovely in spring.")
    assert reply.ok and reply.moves == [] and reply.message.startswith("Lisbon")


def test_bad_replies_are_reported_not_raised(business):
    bad = parse_reply("REASONING: hmm\nMOVES: fly A.cost\nMESSAGE: hi", business)
    assert not bad.ok and "unknown move" in bad.error and bad.message == "hi"
    missing = parse_reply("REASONING: only thinking", business)
    assert not missing.ok and missing.error == "no MESSAGE section"
