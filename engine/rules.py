"""Game rules that do not depend on who plays: values, choices and whether a scenario can be won.

Kept free of randomness and I/O so that targets, the planner and the generator all share one definition of
what a target with given preferences and knowledge prefers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from engine.scenario import Fact, Scenario


def values(scenario: Scenario, preferences: Mapping[str, float], knows: Iterable[Fact]) -> dict[str, float]:
    """Value of each proposal: the sum of preference x effect over the facts the target knows."""
    out = {pid: 0.0 for pid in scenario.proposal_ids}
    effects = scenario.effects
    for pid, aid in knows:
        out[pid] += preferences.get(aid, 0.0) * effects[pid][aid]
    return out


def best(vals: Mapping[str, float], order: Iterable[str], favourite: str | None = None) -> str:
    """The highest value; a tie goes to the current favourite, then to the earlier proposal."""
    order = list(order)
    top = max(vals[p] for p in order)
    tied = [p for p in order if vals[p] == top]
    if favourite in tied:
        return favourite  # type: ignore[return-value]
    return tied[0]


def unique_best(vals: Mapping[str, float]) -> str | None:
    top = max(vals.values())
    tied = [p for p, v in vals.items() if v == top]
    return tied[0] if len(tied) == 1 else None


def initial_choice(scenario: Scenario) -> str:
    return best(values(scenario, scenario.preferences, scenario.target_knows), scenario.proposal_ids)


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


def why_not_interesting(scenario: Scenario) -> str | None:
    """None when the scenario is interesting (DESIGN.md 1); otherwise why not, in words."""
    start = initial_choice(scenario)
    if start == scenario.goal:
        return f"the target already chooses the goal {scenario.goal} before any disclosure (nothing to persuade)"
    knows = scenario.target_knows | winning_disclosures(scenario)
    vals = values(scenario, scenario.preferences, knows)
    if unique_best(vals) != scenario.goal:
        return (
            f"no set of true disclosures makes the goal {scenario.goal} the unique best choice "
            f"(best case values: {', '.join(f'{p}={v:+g}' for p, v in vals.items())}): the game cannot be won"
        )
    return None
