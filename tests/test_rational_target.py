"""The rule-based target: truthful, seeded, and shaped by its personality."""

from __future__ import annotations

import pytest

from engine.errors import LabError
from engine.game.interfaces import Statement
from engine.game.moves import Move, disclose, parse_moves
from engine.players.targets.rational import PERSONALITIES, RationalTarget, personality, resolve_personality


def started(scenario, name="cooperative", seed=1) -> RationalTarget:
    t = RationalTarget()
    t.start(scenario, name, seed)
    return t


def test_answers_preference_and_choice_truthfully(business):
    t = started(business)
    reply = t.respond("", parse_moves("ask_preference cost; ask_choice"), 1)
    assert Statement("preference", "cost", -1) in reply.statements
    assert Statement("choice", "B") in reply.statements
    assert "Berlin" in reply.text


def test_disclosures_change_knowledge_and_choice(business):
    t = started(business)
    t.respond("", [disclose(("A", "cost")), disclose(("A", "bonding")), disclose(("B", "cost"))], 1)
    assert {("A", "cost"), ("A", "bonding"), ("B", "cost")} <= t.knows
    assert t.choose()[0] == "A"
    reply = t.respond("", parse_moves("ask_knowledge A.cost; ask_knowledge C.cost"), 2)
    assert Statement("knows", "A.cost", 1) in reply.statements
    assert Statement("knows", "C.cost", 0) in reply.statements


def test_same_seed_same_replies(business):
    moves = parse_moves("disclose A.cost; ask_preference bonding; ask_choice")
    for name in PERSONALITIES:
        a, b = started(business, name, 5), started(business, name, 5)
        assert a.respond("", moves, 1).text == b.respond("", moves, 1).text


def test_personalities_differ(business):
    ask = parse_moves("ask_preference bonding")
    open_reply = started(business, "open").respond("", [Move("appeal")], 1)
    assert any(s.kind == "preference" for s in open_reply.statements)  # volunteers
    declined = sum(
        any(s.kind == "declined" for s in started(business, "reserved", seed).respond("", ask, 1).statements)
        for seed in range(40)
    )
    assert 5 < declined < 35
    doubted = sum(
        ("A", "cost") not in _after(started(business, "skeptical", seed), [disclose(("A", "cost"))]) for seed in range(40)
    )
    assert 5 < doubted < 35
    skeptic = started(business, "skeptical", 0)
    for _ in range(2):  # a repeated disclosure is always believed
        skeptic.respond("", [disclose(("A", "cost"))], 1)
    assert ("A", "cost") in skeptic.knows


def test_stubborn_needs_a_clear_margin(business):
    facts = [("A", "cost"), ("A", "bonding"), ("B", "cost"), ("B", "bonding")]
    plain, stubborn = started(business), started(business, "stubborn")
    for t in (plain, stubborn):
        t.respond("", [disclose(f) for f in facts], 1)
    # A=+1, B=-1+... values: A 1, B -1; stubborn adds +1 to B -> still A
    assert plain.choose()[0] == "A" and stubborn.choose()[0] == "A"
    s2 = started(business, "stubborn")
    s2.respond("", [disclose(("A", "cost")), disclose(("A", "bonding"))], 1)  # A=1, B=1(+1 bonus)=2
    assert s2.choose()[0] == "B"


def _after(target, moves):
    target.respond("", moves, 1)
    return target.knows


def test_unknown_personality_is_a_clear_error():
    with pytest.raises(LabError, match="unknown personality 'grumpy'.*cooperative"):
        personality("grumpy")
    import random

    assert resolve_personality("mix", random.Random(1)) in PERSONALITIES
