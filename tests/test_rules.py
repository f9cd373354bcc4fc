"""Values, choices and the 'interesting' check that every generated scenario must pass."""

from __future__ import annotations

from engine.rules import best, initial_choice, unique_best, values, why_not_interesting, winning_disclosures


def test_values_sum_known_facts_only(business):
    vals = values(business, business.preferences, business.target_knows)
    # knows A.travel (+1, dislikes travel) and B.travel (-1)
    assert vals == {"A": -1.0, "B": 1.0, "C": 0.0}
    assert initial_choice(business) == "B"


def test_ties_go_to_the_favourite_then_the_first():
    assert best({"A": 1, "B": 1, "C": 0}, "ABC") == "A"
    assert best({"A": 1, "B": 1, "C": 0}, "ABC", favourite="B") == "B"
    assert unique_best({"A": 1, "B": 1}) is None


def test_winning_disclosures_make_the_goal_unique_best(business):
    wins = winning_disclosures(business)
    assert ("A", "cost") in wins and ("B", "cost") in wins
    assert ("A", "travel") not in wins  # would hurt the goal
    vals = values(business, business.preferences, business.target_knows | wins)
    assert unique_best(vals) == business.goal
    assert why_not_interesting(business) is None
