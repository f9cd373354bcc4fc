"""Statistics shared by benchmarks, evaluation and the TUI: each metric is defined here, once.

Every metric reads the typed game record (`engine.game.record.Episode`: what the episode loop returns,
`store.session_episode` reads back and a trajectory file validates into), so the same numbers come out of a live
evaluation, a stored run and an imported file. An episode's `status` says whether it is scored, and each turn's
`usage` / `target_usage` dicts (`input_tokens`, `output_tokens`, `cost_usd`, as `engine.llm.base.ChatResult.usage`
writes them) give tokens and cost.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the record imports pydantic: `wilson` alone (mindgames, bench) should not pay for it
    from engine.game.record import Belief, Episode, Outcome

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
def is_scored(episode: Episode) -> bool:
    """An episode counts in the rates only if it finished with an outcome (errored ones are counted apart)."""
    return episode.status == "finished" and episode.outcome is not None


def episode_key(episode: Episode, with_condition: bool = True) -> tuple:
    """What makes two agents' episodes 'the same episode': scenario, seed, personality (and condition)."""
    key = (episode.scenario.id, episode.target.seed, episode.target.personality)
    return (*key, episode.condition) if with_condition else key


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def belief_matches(belief: Belief | None, preferences: Mapping[str, float]) -> tuple[int, int]:
    """(correct, total) attributes where the belief's most likely level equals the sign of the true preference."""
    believed = belief.preferences if belief is not None else {}
    correct = total = 0
    for attr, truth in preferences.items():
        dist = believed.get(attr)
        total += 1
        if dist:
            guess = max(LEVELS, key=lambda level: dist.get(level, 0.0))
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
def _outcomes(episodes: Iterable[Episode]) -> list[Outcome]:
    """The outcomes of the scored episodes: what every rate below counts."""
    return [e.outcome for e in episodes if is_scored(e) and e.outcome is not None]


def success_rate(episodes: Sequence[Episode]) -> dict[str, Any]:
    return outcome_counts(o.success for o in _outcomes(episodes))


def turns_to_success(episodes: Sequence[Episode]) -> dict[str, float | None]:
    turns = [o.turns or 0 for o in _outcomes(episodes) if o.success]
    if not turns:
        return {"mean": None, "median": None}
    return {"mean": statistics.fmean(turns), "median": float(statistics.median(turns))}


def preference_alignment(episodes: Sequence[Episode]) -> dict[str, Any]:
    """Accuracy of the persuader's belief about each preference: at its last turn, and per turn index.

    Turns without a belief count as wrong on every attribute (an agent that tracks nothing knows nothing);
    `coverage` says what share of turns had a belief at all.
    """
    final_c = final_n = with_belief = n_turns = 0
    by_turn: dict[int, list[int]] = {}
    for e in episodes:
        if not is_scored(e) or not e.turns:
            continue
        for turn in e.turns:
            c, n = belief_matches(turn.belief, e.scenario.preferences)
            n_turns += 1
            with_belief += turn.belief is not None
            slot = by_turn.setdefault(turn.index, [0, 0])
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


def counterfactual_quality(episodes: Sequence[Episode]) -> dict[str, Any]:
    """Did the predicted effect of each move come true?

    `choice_accuracy`: the counterfactual's `predicted_choice` against the target's favourite right after the
    turn (`target_state.favourite`). `brier`: mean (p_goal_after - success)^2 against the episode's outcome.
    """
    hits = choices = 0
    sq: list[float] = []
    for e in episodes:
        if not is_scored(e) or e.outcome is None:
            continue
        success = float(e.outcome.success)
        for turn in e.turns:
            cf = turn.counterfactual
            if cf is None:
                continue
            favourite = turn.target_state.get("favourite")  # the target's own state dict, not a record field
            if cf.predicted_choice and favourite:
                choices += 1
                hits += cf.predicted_choice == favourite
            if cf.p_goal_after is not None:
                sq.append((cf.p_goal_after - success) ** 2)
    return {
        "choice_accuracy": _ratio(hits, choices),
        "n_choices": choices,
        "brier": statistics.fmean(sq) if sq else None,
        "n_predictions": len(sq),
    }


def move_turns(episodes: Sequence[Episode]) -> dict[str, Any]:
    """Share of persuader turns that made at least one game move (a parsed MOVES section).

    A reply without section labels still counts as parsed (its text is the message), so `unparseable` alone
    cannot tell a model that plays the game from one that only chats: this rate can.
    """
    turns = [turn for e in episodes if is_scored(e) for turn in e.turns]
    with_moves = sum(1 for turn in turns if turn.moves)
    return {"turns": len(turns), "with_moves": with_moves, "rate": _ratio(with_moves, len(turns))}


def disclosures(episodes: Sequence[Episode]) -> dict[str, Any]:
    """Disclosures made, and how many of them the target's own words had already shown to hurt the goal (its
    preferences stated before that turn; in the revealed condition, the ones the persuader was given): the moves
    `disclose=stated` holds back (`reply_schema.harmful_disclosures`). A persuader that asks and then ignores the
    answers shows here, not in its success rate alone."""
    from engine.game.scenario import fact_key
    from engine.players.reply_schema import harmful_disclosures

    made = ruled_out = 0
    for e in (e for e in episodes if is_scored(e)):
        given = e.scenario.preferences if e.condition == "revealed" else None
        for i, turn in enumerate(e.turns):
            facts = [m.fact for m in turn.moves if m.kind == "disclose" and m.fact]
            if not facts:
                continue
            harmful = harmful_disclosures((st for t in e.turns[:i] for st in t.statements), e.scenario, given)
            made += len(facts)
            ruled_out += sum(f"disclose {fact_key(f)}" in harmful for f in facts)
    return {"made": made, "ruled_out": ruled_out}


def usage_totals(episodes: Iterable[Episode]) -> dict[str, float]:
    """Tokens and cost of persuader and target together, from every turn's usage dicts."""
    out = {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    for e in episodes:
        for turn in e.turns:
            for usage in (turn.usage, turn.target_usage):
                for key in out:
                    out[key] += (usage or {}).get(key) or 0
    out["cost_usd"] = round(out["cost_usd"], 6)
    return out


def summarize(episodes: Sequence[Episode]) -> dict[str, Any]:
    """Every metric of one agent's episodes, JSON-ready: what `eval_runs.results_json` holds."""
    episodes = list(episodes)
    scored = [e for e in episodes if is_scored(e)]
    outcomes = _outcomes(scored)
    unfinished = sum(1 for e in episodes if e.status in UNFINISHED)
    return {
        "episodes": len(episodes),
        "scored": len(scored),
        "errored": len(episodes) - len(scored) - unfinished,
        "unfinished": unfinished,
        "success": success_rate(scored),
        "turns_to_success": turns_to_success(scored),
        "preference_alignment": preference_alignment(scored),
        "counterfactual": counterfactual_quality(scored),
        "violations": sum(o.violations for o in outcomes),
        "unparseable": sum(1 for e in scored for turn in e.turns if not turn.parse_ok),
        "moves": move_turns(scored),
        "disclosures": disclosures(scored),
        "mental_state_appeals": _ratio(sum(o.mental_state_appeals for o in outcomes), len(outcomes)),
        "usage": usage_totals(episodes),
    }


def paired(episodes_a: Sequence[Episode], episodes_b: Sequence[Episode]) -> dict[str, Any]:
    """McNemar's exact test of two agents on the episodes both finished (matched by `episode_key`).

    Episodes are matched with their condition when the runs share conditions; otherwise (planner hidden vs
    revealed) on scenario, seed and personality alone.
    """
    def index(episodes: Sequence[Episode], with_condition: bool) -> dict[tuple, bool]:
        return {episode_key(e, with_condition): e.outcome.success for e in episodes if is_scored(e) and e.outcome}

    a, b = index(episodes_a, True), index(episodes_b, True)
    if not a.keys() & b.keys():
        a, b = index(episodes_a, False), index(episodes_b, False)
    wins = [(a[k], b[k]) for k in a.keys() & b.keys()]
    only_a, only_b = wins.count((True, False)), wins.count((False, True))
    return {
        "pairs": len(wins),
        "both": wins.count((True, True)),
        "only_a": only_a,
        "only_b": only_b,
        "neither": wins.count((False, False)),
        "p_value": mcnemar_exact(only_a, only_b),
    }


def by_personality(episodes: Sequence[Episode]) -> dict[str, dict[str, Any]]:
    """`summarize` within each simulated human's personality, personalities sorted: a run with `--personality mix`
    may win with cooperative targets and lose every stubborn one, which the overall rate hides."""
    groups: dict[str, list[Episode]] = {}
    for episode in episodes:
        groups.setdefault(episode.target.personality or "unknown", []).append(episode)
    return {personality: summarize(group) for personality, group in sorted(groups.items())}
