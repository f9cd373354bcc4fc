"""The belief tracker: Bayes' rule on what the rule-based target says, in the shared belief schema."""

from __future__ import annotations

import pytest

from engine.belief import BeliefTracker
from engine.game import Exchange, HiddenState, Statement, persuader_side
from engine.moves import Move, disclose
from engine.rules import initial_choice


def _tracker(scenario, condition="hidden"):
    revealed = HiddenState(dict(scenario.preferences), scenario.target_knows) if condition == "revealed" else None
    return BeliefTracker(persuader_side(scenario), condition, revealed)


def _ex(moves, statements):
    return Exchange("", moves, "", [Statement(*s) for s in statements], [])


def test_prior_is_the_schema_and_conditioned_on_a_playable_scenario(business):
    tr = _tracker(business)
    d = tr.to_dict()
    assert set(d) == {"preferences", "predicted_choice", "p_goal"}
    for dist in d["preferences"].values():
        assert set(dist) == {"like", "neutral", "dislike"}
        assert sum(dist.values()) == pytest.approx(1.0, abs=0.01)
    # every playable scenario starts with the target away from the goal, and the prior knows it
    assert d["p_goal"] < 0.2 and d["predicted_choice"] != business.goal


def test_revealed_state_is_certain(business):
    tr = _tracker(business, "revealed")
    for attr, dist in tr.preference_marginals().items():
        assert dist[int(business.preferences[attr] > 0) - int(business.preferences[attr] < 0)] == pytest.approx(1.0)
    assert tr.to_dict()["predicted_choice"] == initial_choice(business)


def test_stated_preference_is_believed(business):
    tr = _tracker(business)
    tr.observe(_ex([Move("ask_preference", attribute="cost")], [("preference", "cost", -1)]))
    assert tr.preference_marginals()["cost"][-1] > 0.98
    assert tr.accuracy(business.preferences) >= 1 / 3


def test_behaviour_reveals_the_personality(business):
    doubter = _tracker(business)
    fact = ("A", "cost")
    doubter.observe(_ex([disclose(fact)], [("accepted", "A.cost", 0)]))
    assert doubter.personality_marginals()["skeptical"] > 0.9
    assert doubter.knows_marginals()[fact] == pytest.approx(0.0, abs=0.02)  # doubted: not taken in
    shy = _tracker(business)
    shy.observe(_ex([Move("ask_preference", attribute="cost")], [("declined", "cost")]))
    assert shy.personality_marginals()["reserved"] > 0.9
    talker = _tracker(business)
    first = talker.attrs[0]  # the open target volunteers its strongest concern, the earliest on a tie
    talker.observe(_ex([Move("appeal")], [("preference", first, 1)]))  # volunteered, nobody asked
    assert talker.personality_marginals()["open"] > 0.9
    assert talker.preference_marginals()[first][1] > 0.9
    quiet = _tracker(business)
    quiet.observe(_ex([Move("appeal")], []))
    assert quiet.personality_marginals()["open"] < 0.01


def test_true_state_survives_a_whole_game(library):
    """Against the rule-based target, the likelihoods are the target's own numbers: the truth is never ruled out."""
    from engine.episode import play
    from engine.persuaders.planner import Planner
    from engine.targets.rational import PERSONALITIES, RationalTarget

    scenario = library.get("heldout-20261124-00003")
    for i, pers in enumerate(PERSONALITIES):
        planner = Planner()
        ep = play(scenario, planner, RationalTarget(), personality=pers, seed=i)
        last = ep.turns[-1]
        planner.tracker.observe(Exchange(last.message, last.moves, last.target_reply, last.statements, []))
        tr = planner.tracker
        signs = [int(scenario.preferences[a] > 0) - int(scenario.preferences[a] < 0) for a in tr.attrs]
        right_prefs = (signs == tr.W).all(axis=1)
        truth = right_prefs & ([f in scenario.target_knows for f in tr.facts] == tr.K0).all(axis=1)
        assert truth.any(), pers
        assert tr.b[:, right_prefs].sum() > 0.5, pers  # the true preferences are the likeliest explanation
        assert tr.personality_marginals()[pers] > 0.1, pers
