"""Values, choices and the 'interesting' check that every generated scenario must pass."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engine.game.rules import (
    choose,
    choose_array,
    initial_choice,
    start_tie,
    unique_best,
    values,
    why_not_interesting,
    winning_disclosures,
)
from engine.game.scenario import DEFAULT_DIR, ScenarioError, load_file


def test_values_sum_known_facts_only(business):
    vals = values(business, business.preferences, business.target_knows)
    # knows A.travel (+1, dislikes travel) and B.travel (-1)
    assert vals == {"A": -1.0, "B": 1.0, "C": 0.0}
    assert initial_choice(business) == "B"


def test_the_target_switches_only_to_a_unique_best():
    assert choose({"A": 1, "B": 1, "C": 0}, "C") == "C"  # a tie at the top keeps the current choice
    assert choose({"C": 0, "B": 1, "A": 1}, "C") == "C"  # whatever the listing order
    assert choose({"A": 2, "B": 1, "C": 0}, "C") == "A"
    assert choose({"A": 0.1 + 0.2, "B": 0.3}, "B") == "B"  # equal up to rounding is a tie
    assert unique_best({"A": 1, "B": 1}) is None


def test_the_vectorised_rule_matches_the_scalar_one():
    rng = np.random.default_rng(0)
    vals = rng.integers(-2, 3, size=(500, 3)).astype(float)
    current = rng.integers(0, 3, size=500)
    picked = choose_array(vals, current)
    for row, cur, got in zip(vals, current, picked, strict=True):
        assert "ABC"[got] == choose(dict(zip("ABC", row, strict=True)), "ABC"[cur])
    assert choose_array(np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]]), None).tolist() == [-1, 1]


def test_a_tied_initial_choice_is_refused_by_name(business):
    tied = replace(business, target_knows=frozenset())  # knows nothing: every proposal is worth 0
    assert start_tie(tied) == ["A", "B", "C"]
    with pytest.raises(ScenarioError, match="initial choice is tied between A, B, C"):
        initial_choice(tied)
    assert "tied between A, B, C" in why_not_interesting(tied)
    assert start_tie(business) == []


def test_winning_disclosures_make_the_goal_unique_best(business):
    wins = winning_disclosures(business)
    assert ("A", "cost") in wins and ("B", "cost") in wins
    assert ("A", "travel") not in wins  # would hurt the goal
    vals = values(business, business.preferences, business.target_knows | wins)
    assert unique_best(vals) == business.goal
    assert why_not_interesting(business) is None


def test_at_the_end_a_tie_keeps_the_current_choice_whatever_the_order(business):
    from engine.game.moves import disclose
    from engine.players.targets.rational import RationalTarget

    # starts on B (A=-1, B=+1, C=0); then A and C tie at +1 above B: the target stays on B, then A alone leads
    for proposals in (business.proposals, business.proposals[::-1]):
        target = RationalTarget()
        target.start(replace(business, proposals=proposals), "cooperative", 0)
        facts = [("B", "cost"), ("B", "bonding"), ("C", "bonding"), ("A", "cost"), ("A", "bonding")]
        target.respond("", [disclose(f) for f in facts], 1)
        assert target.choose()[0] == "B"
        target.respond("", [disclose(("C", "travel"))], 2)
        assert target.choose()[0] == "A"


@pytest.mark.parametrize("agent", ["planner", "greedy", "reveal-all"])
def test_heldout_outcomes_do_not_depend_on_the_proposal_order(agent):
    """Every held-out scenario played with its proposals listed in another order ends the same way (each against
    one of the personalities in turn: the stubborn bonus and the impulsive draw must not depend on the order either)."""
    from engine.game.episode import play
    from engine.players.registry import make_persuader
    from engine.players.targets.rational import PERSONALITIES, RationalTarget

    for i, scenario in enumerate(load_file(DEFAULT_DIR / "heldout.jsonl")):
        personality = list(PERSONALITIES)[i % len(PERSONALITIES)]
        outcomes = []
        for proposals in (scenario.proposals, scenario.proposals[1:] + scenario.proposals[:1]):
            episode = play(replace(scenario, proposals=proposals), make_persuader(agent), RationalTarget(),
                           personality=personality, seed=i)
            outcomes.append((episode.outcome.choice, episode.outcome.success, episode.outcome.turns))
        assert outcomes[0] == outcomes[1], (scenario.id, personality)
