"""Game rules that do not depend on who plays: values, choices and whether a scenario can be won.

Kept free of randomness and I/O so that targets, the planner and the generator all share one definition of
what a target with given preferences and knowledge prefers. The choice rule is MindGames': the target switches
only to a *unique* best proposal and keeps its current choice when the top value is tied, so no outcome depends
on the order in which proposals are listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from engine.game.scenario import Fact, Scenario, ScenarioError

if TYPE_CHECKING:  # numpy only for the planner's array form: every command's start-up imports this module
    import numpy as np

TIE = 1e-9
"""Values closer than this are equal: preference weights may be fractions whose sums differ by rounding only."""


def values(scenario: Scenario, preferences: Mapping[str, float], knows: Iterable[Fact]) -> dict[str, float]:
    """Value of each proposal: the sum of preference x effect over the facts the target knows."""
    out = {pid: 0.0 for pid in scenario.proposal_ids}
    effects = scenario.effects
    for pid, aid in knows:
        out[pid] += preferences.get(aid, 0.0) * effects[pid][aid]
    return out


def top(vals: Mapping[str, float]) -> list[str]:
    """The proposals tied for the highest value (one when the best is unique)."""
    high = max(vals.values())
    return [p for p, v in vals.items() if v >= high - TIE]


def unique_best(vals: Mapping[str, float]) -> str | None:
    tied = top(vals)
    return tied[0] if len(tied) == 1 else None


def choose(vals: Mapping[str, float], current: str) -> str:
    """MindGames' rule: the unique best proposal; when the top value is tied, the current choice stays."""
    return unique_best(vals) or current


def choose_array(vals: np.ndarray, current: np.ndarray | None) -> np.ndarray:
    """`choose` over the last axis of (..., n) values, as proposal indices; -1 where tied with no current choice."""
    import numpy as np

    high = vals.max(axis=-1)
    unique = (vals >= high[..., None] - TIE).sum(axis=-1) == 1
    return np.where(unique, vals.argmax(axis=-1), -1 if current is None else current)


def start_tie(scenario: Scenario) -> list[str]:
    """The proposals tied for the target's first choice; empty when that choice is unique, as it must be."""
    tied = top(values(scenario, scenario.preferences, scenario.target_knows))
    return tied if len(tied) > 1 else []


def initial_choice(scenario: Scenario) -> str:
    """The target's choice before any message: the unique best by what it knows at the start."""
    tied = start_tie(scenario)
    if tied:
        raise ScenarioError(f"scenario '{scenario.id}': {tie_problem(tied)}")
    return top(values(scenario, scenario.preferences, scenario.target_knows))[0]


def tie_problem(tied: list[str]) -> str:
    return (
        f"the target's initial choice is tied between {', '.join(tied)}: a scenario must start on a unique choice "
        "(change a preference, an effect or what the target knows)"
    )


def winning_disclosures(scenario: Scenario, preferences: Mapping[str, float] | None = None) -> frozenset[Fact]:
    """The disclosures that most favour the goal: every fact that raises the goal's value or lowers a rival's.

    Each fact moves only its own proposal's value, so this set maximises the goal's margin over every rival at
    once: if it does not make the goal the unique best, no set of true disclosures does.
    """
    prefs = scenario.preferences if preferences is None else preferences
    chosen = set()
    for pid, aid in scenario.facts:
        gain = prefs.get(aid, 0.0) * scenario.effects[pid][aid]
        if (pid == scenario.goal and gain > 0) or (pid != scenario.goal and gain < 0):
            chosen.add((pid, aid))
    return frozenset(chosen)


def full_knowledge_problem(scenario: Scenario) -> str | None:
    """None when the scenario's target does what its `full_knowledge_best` says it does once it knows every fact."""
    if scenario.full_knowledge_best is None:
        return None
    vals = values(scenario, scenario.preferences, scenario.facts)
    first = initial_choice(scenario)
    if unique_best(vals) in (None, scenario.goal, first):
        said = ", ".join(f"{p}={v:+g}" for p, v in vals.items())
        return (f"full_knowledge_best is 'other' but, knowing every fact, the target's values are {said}: its unique "
                f"best must be neither the goal {scenario.goal} nor its first choice {first}")
    return None


def why_not_interesting(scenario: Scenario) -> str | None:
    """None when the scenario is interesting (DESIGN.md 1); otherwise why not, in words."""
    tied = start_tie(scenario)
    if tied:
        return tie_problem(tied)
    if initial_choice(scenario) == scenario.goal:
        return f"the target already chooses the goal {scenario.goal} before any disclosure (nothing to persuade)"
    knows = scenario.target_knows | winning_disclosures(scenario)
    vals = values(scenario, scenario.preferences, knows)
    if unique_best(vals) != scenario.goal:
        return (
            f"no set of true disclosures makes the goal {scenario.goal} the unique best choice "
            f"(best case values: {', '.join(f'{p}={v:+g}' for p, v in vals.items())}): the game cannot be won"
        )
    return None
