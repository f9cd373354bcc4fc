"""The episode loop: turns, the no-lying rule, conclude, the limit, conditions, events, errors."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.game.episode import play
from engine.game.interfaces import Persuader, PersuaderTurn
from engine.game.moves import Move, disclose
from engine.players.persuaders.baselines import RandomPersuader, RevealAll
from engine.players.targets.rational import RationalTarget


class Scripted(Persuader):
    """Plays fixed moves, and records what it was shown."""

    name = "scripted"

    def __init__(self, script):
        self.script, self.views = list(script), []

    def act(self, view):
        self.views.append((view.scenario, view.revealed, list(view.history)))
        moves = self.script.pop(0) if self.script else [Move("conclude")]
        return PersuaderTurn("msg", moves)


class Recorder:
    def __init__(self):
        self.events = []

    def on_start(self, ep):
        self.events.append("start")

    def on_turn(self, ep, turn):
        self.events.append(f"turn{turn.index}")

    def on_end(self, ep):
        self.events.append(f"end:{ep.status}")


def test_reveal_all_wins_business_and_emits_events(business):
    rec = Recorder()
    ep = play(business, RevealAll(), RationalTarget(), seed=3, listeners=[rec])
    assert ep.status == "finished" and ep.outcome.success and ep.outcome.choice == "A"
    assert rec.events == ["start", "turn1", "turn2", "turn3", "end:finished"]
    assert ep.turns[-1].target_state["favourite"] == "A"


def test_lies_are_refused_counted_and_never_reach_the_target(business):
    ep = play(business, Scripted([[disclose(("B", "cost"), stated=-1), disclose(("A", "cost"), stated=-1)]]), RationalTarget())
    first = ep.turns[0]
    assert first.refused and "contradicts the fact B.cost=+1" in first.refused[0].text()
    assert (first.refused[0].move.text(), first.refused[0].true_value) == ("disclose B.cost=-1", 1)  # typed, not prose
    assert "B.cost" not in first.target_state["knows"] and "A.cost" in first.target_state["knows"]
    assert ep.outcome.violations == 1


def test_turn_limit_and_conclude(business):
    ep = play(replace(business, max_turns=3), Scripted([[Move("appeal")]] * 10), RationalTarget())
    assert ep.outcome.turns == 3 and ep.meta["concluded"] is False
    ep = play(business, Scripted([[Move("ask_choice")], [Move("conclude")]]), RationalTarget())
    assert ep.outcome.turns == 2 and ep.meta["concluded"] is True
    assert ep.outcome.mental_state_appeals == 1


def test_hidden_condition_hides_the_target_state(business):
    hidden, revealed = Scripted([]), Scripted([])
    play(business, hidden, RationalTarget(), condition="hidden")
    play(business, revealed, RationalTarget(), condition="revealed")
    side, secret, _ = hidden.views[0]
    assert side.preferences == {} and side.target_knows == frozenset() and secret is None
    side, secret, _ = revealed.views[0]
    assert secret.preferences == business.preferences and secret.target_knows == business.target_knows


def test_same_seed_same_game(business):
    def run(seed):
        ep = play(business, RandomPersuader(), RationalTarget(), personality="impulsive", seed=seed)
        return [(t.message, t.target_reply) for t in ep.turns], ep.outcome.choice

    assert run(11) == run(11)
    assert any(run(11) != run(s) for s in range(12, 20))


def test_player_error_ends_the_game_errored_and_keeps_turns(business):
    class Breaks(Scripted):
        def act(self, view):
            if view.turn == 2:
                raise RuntimeError("backend down")
            return super().act(view)

    rec = Recorder()
    ep = play(business, Breaks([[Move("appeal")]] * 5), RationalTarget(), listeners=[rec])
    assert ep.status == "errored" and "backend down" in ep.error and len(ep.turns) == 1
    assert rec.events[-1] == "end:errored"


def test_ctrl_c_marks_interrupted_and_reraises(business):
    class Interrupts(Scripted):
        def act(self, view):
            if view.turn == 2:
                raise KeyboardInterrupt
            return super().act(view)

    rec = Recorder()
    with pytest.raises(KeyboardInterrupt):
        play(business, Interrupts([[Move("appeal")]] * 5), RationalTarget(), listeners=[rec])
    assert rec.events == ["start", "turn1", "end:interrupted"]
