"""Statistics shared by benchmarks, evaluation and the TUI: each metric is defined here, once.

Every metric reads trajectory dicts (DESIGN.md 2: `Episode.to_trajectory()` or `store.session_trajectory`), so
the same numbers come out of a live evaluation, a stored run and an imported file. A trajectory may carry
`status` (`finished` | `errored` | `interrupted` | `running`) and, per turn, `usage` / `target_usage` dicts
(`input_tokens`, `output_tokens`, `cost_usd`, as `engine.llm.base.ChatResult.usage` writes them).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

LEVELS = ("dislike", "neutral", "like")  # index = sign + 1
UNFINISHED = ("running", "interrupted")  # a run still playing, or stopped: resumed later, neither scored nor errored


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a success rate: honest at small n and at rates near 0 or 1."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (b: only A won, c: only B won).

    Under the null each discordant pair is a fair coin, so p = P(Binomial(b+c, 1/2) as extreme as observed).
    """
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


# ----- per-episode helpers ----------------------------------------------------------------------------
def is_scored(traj: dict[str, Any]) -> bool:
    """An episode counts in the rates only if it finished with an outcome (errored ones are counted apart)."""
    return traj.get("status", "finished") == "finished" and bool(traj.get("outcome"))


def episode_key(traj: dict[str, Any], with_condition: bool = True) -> tuple:
    """What makes two agents' episodes 'the same episode': scenario, seed, personality (and condition)."""
    scenario = traj.get("scenario") or {}
    target = traj.get("target") or {}
    key = (scenario.get("id") or traj.get("scenario_id"), target.get("seed"), target.get("personality"))
    return (*key, traj.get("condition")) if with_condition else key


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def belief_matches(belief: dict[str, Any] | None, preferences: dict[str, float]) -> tuple[int, int]:
    """(correct, total) attributes where the belief's most likely level equals the sign of the true preference."""
    prefs = (belief or {}).get("preferences") or {}
    correct = total = 0
    for attr, truth in preferences.items():
        dist = prefs.get(attr)
        total += 1
        if isinstance(dist, dict) and dist:
            guess = max(LEVELS, key=lambda level: float(dist.get(level, 0.0)))
            correct += guess == LEVELS[_sign(float(truth)) + 1]
    return correct, total


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


# ----- outcomes: the one count of successes and failures ----------------------------------------------
def outcome_counts(successes: Iterable[bool]) -> dict[str, Any]:
    """n, successes, failures, rate (None when n is 0) and its Wilson 95% interval, of finished conversations."""
    results = [bool(s) for s in successes]
    wins = sum(results)
    return {"n": len(results), "successes": wins, "failures": len(results) - wins,
            "rate": _ratio(wins, len(results)), "ci95": list(wilson(wins, len(results)))}


def outcome_summary(results: Iterable[tuple[bool, Mapping[str, str]]]) -> dict[str, Any]:
    """Outcome counts overall and within each group: what `trajectories stats`, `generate`, data prep and the
    TUI's Data pane report, so their numbers cannot drift apart.

    Each result is one finished conversation: (success, {group: value}), e.g. {"persuader": "planner"}.
    Returns `outcome_counts` of all of them plus `by`: {group: {value: outcome_counts}}, values sorted.
    """
    everything: list[bool] = []
    grouped: dict[str, dict[str, list[bool]]] = {}
    for success, groups in results:
        everything.append(success)
        for group, value in groups.items():
            grouped.setdefault(group, {}).setdefault(value, []).append(success)
    by = {g: {v: outcome_counts(cell) for v, cell in sorted(cells.items())} for g, cells in grouped.items()}
    return {**outcome_counts(everything), "by": by}


# ----- metrics over many episodes ---------------------------------------------------------------------
def success_rate(trajs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return outcome_counts(t["outcome"]["success"] for t in trajs if is_scored(t))


def turns_to_success(trajs: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    turns = [int(t["outcome"]["turns"]) for t in trajs if is_scored(t) and t["outcome"]["success"]]
    if not turns:
        return {"mean": None, "median": None}
    return {"mean": statistics.fmean(turns), "median": float(statistics.median(turns))}


def preference_alignment(trajs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy of the persuader's belief about each preference: at its last turn, and per turn index.

    Turns without a belief count as wrong on every attribute (an agent that tracks nothing knows nothing);
    `coverage` says what share of turns had a belief at all.
    """
    final_c = final_n = with_belief = n_turns = 0
    by_turn: dict[int, list[int]] = {}
    for t in trajs:
        if not is_scored(t) or not t.get("turns"):
            continue
        prefs = (t.get("scenario") or {}).get("preferences") or {}
        for position, turn in enumerate(t["turns"], 1):
            c, n = belief_matches(turn.get("belief"), prefs)
            n_turns += 1
            with_belief += bool(turn.get("belief"))
            slot = by_turn.setdefault(int(turn.get("index", position)), [0, 0])
            slot[0] += c
            slot[1] += n
        final_c += c  # the loop's last (c, n) is the final turn's
        final_n += n
    if not with_belief:  # the agent keeps no belief: alignment is undefined, not zero
        return {"final": None, "by_turn": {}, "coverage": _ratio(0, n_turns)}
    return {
        "final": _ratio(final_c, final_n),
        "by_turn": {i: _ratio(c, n) for i, (c, n) in sorted(by_turn.items())},
        "coverage": _ratio(with_belief, n_turns),
    }


def counterfactual_quality(trajs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Did the predicted effect of each move come true?

    `choice_accuracy`: the counterfactual's `predicted_choice` against the target's favourite right after the
    turn (`target_state.favourite`). `brier`: mean (p_goal_after - success)^2 against the episode's outcome.
    """
    hits = choices = 0
    sq: list[float] = []
    for t in trajs:
        if not is_scored(t):
            continue
        success = float(bool(t["outcome"]["success"]))
        for turn in t.get("turns") or []:
            cf = turn.get("counterfactual") or {}
            favourite = (turn.get("target_state") or {}).get("favourite")
            if cf.get("predicted_choice") and favourite:
                choices += 1
                hits += cf["predicted_choice"] == favourite
            if isinstance(cf.get("p_goal_after"), (int, float)):
                sq.append((float(cf["p_goal_after"]) - success) ** 2)
    return {
        "choice_accuracy": _ratio(hits, choices),
        "n_choices": choices,
        "brier": statistics.fmean(sq) if sq else None,
        "n_predictions": len(sq),
    }


def move_turns(trajs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Share of persuader turns that made at least one game move (a parsed MOVES section).

    A reply without section labels still counts as parsed (its text is the message), so `unparseable` alone
    cannot tell a model that plays the game from one that only chats: this rate can.
    """
    turns = [turn for t in trajs if is_scored(t) for turn in t.get("turns") or []]
    with_moves = sum(1 for turn in turns if turn.get("moves"))
    return {"turns": len(turns), "with_moves": with_moves, "rate": _ratio(with_moves, len(turns))}


def usage_totals(trajs: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Tokens and cost of persuader and target together, from every turn's usage dicts."""
    out = {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    for t in trajs:
        for turn in t.get("turns") or []:
            for usage in (turn.get("usage"), turn.get("target_usage")):
                for key in out:
                    out[key] += (usage or {}).get(key) or 0
    out["cost_usd"] = round(out["cost_usd"], 6)
    return out


def summarize(trajs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Every metric of one agent's episodes, JSON-ready: what `eval_runs.results_json` holds."""
    trajs = list(trajs)
    scored = [t for t in trajs if is_scored(t)]
    unfinished = sum(1 for t in trajs if t.get("status") in UNFINISHED)
    return {
        "episodes": len(trajs),
        "scored": len(scored),
        "errored": len(trajs) - len(scored) - unfinished,
        "unfinished": unfinished,
        "success": success_rate(trajs),
        "turns_to_success": turns_to_success(trajs),
        "preference_alignment": preference_alignment(trajs),
        "counterfactual": counterfactual_quality(trajs),
        "violations": sum(int(t["outcome"].get("violations", 0)) for t in scored),
        "unparseable": sum(1 for t in scored for turn in t.get("turns") or [] if turn.get("parse_ok") is False),
        "moves": move_turns(trajs),
        "mental_state_appeals": _ratio(sum(int(t["outcome"].get("mental_state_appeals", 0)) for t in scored), len(scored)),
        "usage": usage_totals(trajs),
    }


def paired(trajs_a: Sequence[dict[str, Any]], trajs_b: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """McNemar's exact test of two agents on the episodes both finished (matched by `episode_key`).

    Episodes are matched with their condition when the runs share conditions; otherwise (planner hidden vs
    revealed) on scenario, seed and personality alone.
    """
    def index(trajs: Sequence[dict[str, Any]], with_condition: bool) -> dict[tuple, dict[str, Any]]:
        return {episode_key(t, with_condition): t for t in trajs if is_scored(t)}

    a, b = index(trajs_a, True), index(trajs_b, True)
    if not a.keys() & b.keys():
        a, b = index(trajs_a, False), index(trajs_b, False)
    wins = [(bool(a[k]["outcome"]["success"]), bool(b[k]["outcome"]["success"])) for k in a.keys() & b.keys()]
    only_a, only_b = wins.count((True, False)), wins.count((False, True))
    return {
        "pairs": len(wins),
        "both": wins.count((True, True)),
        "only_a": only_a,
        "only_b": only_b,
        "neither": wins.count((False, False)),
        "p_value": mcnemar_exact(only_a, only_b),
    }
