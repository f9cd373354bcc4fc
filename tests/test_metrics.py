"""Each metric on a hand-made case whose answer is worked out by hand, built as the typed game record."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from engine.game.episode import play
from engine.game.record import Belief, Counterfactual, Episode, Outcome, PersuaderInfo, TargetInfo, Turn
from engine.game.scenario import Scenario
from engine.pipeline import metrics
from engine.players.persuaders.baselines import RevealAll
from engine.players.targets.rational import RationalTarget
from engine.store import StoreListener, session_episode

# goal A; the target dislikes cost, likes fun, is indifferent to time
SCENARIO = Scenario.from_dict({
    "id": "s1", "title": "two trips", "story": "Pick a trip.",
    "proposals": [{"id": "A", "name": "Lisbon"}, {"id": "B", "name": "Oslo"}],
    "attributes": [{"id": "cost", "name": "cost"}, {"id": "fun", "name": "fun"}, {"id": "time", "name": "time"}],
    "effects": {"A": {"cost": -1, "fun": 1, "time": 0}, "B": {"cost": 1, "fun": 0, "time": 0}},
    "preferences": {"cost": -1, "fun": 1, "time": 0},
    "goal": "A",
}, check_interesting=False)


def turn(**fields) -> Turn:
    return Turn(message="hello", target_reply="hm", **fields)


def blank(n: int) -> list[Turn]:
    return [turn() for _ in range(n)]


def episode(success: bool, turns: list[Turn], *, status: str = "finished", sid: str = "s1", seed: int = 0,
            condition: str = "hidden", violations: int = 0, appeals: int = 0) -> Episode:
    outcome = None
    if status == "finished":
        outcome = Outcome(choice="A" if success else "B", success=success, turns=len(turns), violations=violations,
                          mental_state_appeals=appeals)
    return Episode(
        id=f"{sid}-{seed}-{condition}",
        scenario=replace(SCENARIO, id=sid),
        persuader=PersuaderInfo(name="test"),
        target=TargetInfo(kind="rational", personality="cooperative", seed=seed),
        condition=condition,
        status=status,
        turns=turns,
        outcome=outcome,
    )


def belief(cost: str, fun: str, time: str) -> Belief:
    def dist(level):
        return {k: (0.8 if k == level else 0.1) for k in ("like", "neutral", "dislike")}
    return Belief(preferences={"cost": dist(cost), "fun": dist(fun), "time": dist(time)})


def test_wilson_known_value_and_edges():
    lo, hi = metrics.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert metrics.wilson(0, 0) == (0.0, 1.0)
    assert metrics.wilson(0, 20)[0] == 0.0 and metrics.wilson(20, 20)[1] == pytest.approx(1.0)


def test_mcnemar_exact_by_hand():
    # 5 discordant pairs all one way: p = 2 * (1/2)^5
    assert metrics.mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    # b=1, c=3: p = 2 * (C(4,0) + C(4,1)) / 16 = 0.625
    assert metrics.mcnemar_exact(1, 3) == pytest.approx(0.625)
    assert metrics.mcnemar_exact(0, 0) == 1.0
    assert metrics.mcnemar_exact(4, 4) == 1.0


def test_success_rate_and_turns_keep_errored_out():
    episodes = [episode(True, blank(2), seed=0), episode(True, blank(5), seed=1), episode(False, blank(8), seed=2),
                episode(False, [], status="errored", seed=3)]
    rate = metrics.success_rate(episodes)
    assert (rate["successes"], rate["n"]) == (2, 3)
    assert rate["ci95"] == list(metrics.wilson(2, 3))
    assert metrics.turns_to_success(episodes) == {"mean": 3.5, "median": 3.5}
    assert metrics.turns_to_success([episode(False, blank(1))]) == {"mean": None, "median": None}
    summary = metrics.summarize(episodes)
    assert (summary["episodes"], summary["scored"], summary["errored"]) == (4, 3, 1)


def test_outcome_summary_overall_and_by_group():
    results = [(True, {"persuader": "planner", "personality": "skeptical"}),
               (False, {"persuader": "planner", "personality": "impulsive"}),
               (True, {"persuader": "reveal-all", "personality": "skeptical"})]
    summary = metrics.outcome_summary(results)
    assert {k: summary[k] for k in ("n", "successes", "failures")} == {"n": 3, "successes": 2, "failures": 1}
    assert summary["rate"] == pytest.approx(2 / 3) and summary["ci95"] == list(metrics.wilson(2, 3))
    assert list(summary["by"]["personality"]) == ["impulsive", "skeptical"]  # values sorted
    planner = summary["by"]["persuader"]["planner"]
    assert (planner["n"], planner["successes"], planner["failures"], planner["rate"]) == (2, 1, 1, 0.5)
    empty = metrics.outcome_summary([])
    assert (empty["n"], empty["rate"], empty["by"]) == (0, None, {})


def test_preference_alignment_final_and_by_turn():
    # truth: cost dislike, fun like, time neutral
    t = episode(True, [
        turn(index=1, belief=belief("like", "like", "like")),       # 1 of 3 right
        turn(index=2, belief=belief("dislike", "like", "neutral")),  # 3 of 3
    ])
    u = episode(False, [turn(index=1, belief=None)], seed=1)         # no belief: 0 of 3
    out = metrics.preference_alignment([t, u])
    assert out["final"] == pytest.approx(3 / 6)
    assert out["by_turn"] == {1: pytest.approx(1 / 6), 2: pytest.approx(1.0)}
    assert out["coverage"] == pytest.approx(2 / 3)
    assert metrics.preference_alignment([u])["final"] is None


def test_counterfactual_quality():
    turns = [
        turn(index=1, counterfactual=Counterfactual(predicted_choice="B", p_goal_after=0.2),
             target_state={"favourite": "B"}),
        turn(index=2, counterfactual=Counterfactual(predicted_choice="B", p_goal_after=0.9),
             target_state={"favourite": "A"}),
        turn(index=3, counterfactual=None, target_state={"favourite": "A"}),
    ]
    out = metrics.counterfactual_quality([episode(True, turns)])
    assert out["choice_accuracy"] == 0.5 and out["n_choices"] == 2
    assert out["brier"] == pytest.approx(((0.2 - 1) ** 2 + (0.9 - 1) ** 2) / 2)


def test_usage_violations_unparseable():
    turns = [
        turn(index=1, usage={"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.001},
             target_usage={"input_tokens": 50, "output_tokens": 10, "cost_usd": 0.0005}),
        turn(index=2, parse_ok=False, usage={"input_tokens": 1, "output_tokens": 2}),
    ]
    s = metrics.summarize([episode(False, turns, violations=2)])
    assert s["usage"] == {"input_tokens": 151, "output_tokens": 32, "cost_usd": 0.0015}
    assert s["violations"] == 2 and s["unparseable"] == 1


def test_paired_matches_episodes_and_falls_back_across_conditions():
    a = [episode(True, blank(1), seed=i) for i in range(6)]
    b = [episode(i == 0, blank(1), seed=i) for i in range(6)] + [episode(True, blank(1), seed=9)]
    p = metrics.paired(a, b)
    assert (p["pairs"], p["both"], p["only_a"], p["only_b"]) == (6, 1, 5, 0)
    assert p["p_value"] == pytest.approx(2 / 32)
    revealed = [episode(True, blank(1), seed=i, condition="revealed") for i in range(6)]
    assert metrics.paired(b, revealed)["pairs"] == 6
    across = metrics.paired(b, revealed)  # matched without the condition: seed 0 both won, seeds 1-5 only B
    assert (across["both"], across["only_a"], across["only_b"], across["neither"]) == (1, 0, 5, 0)
    assert not math.isnan(p["p_value"])


def test_move_turns_and_mental_state_appeals():
    a = episode(True, [turn(index=1, moves=["ask_preference cost"]), turn(index=2, moves=[])], appeals=3)
    b = episode(False, [turn(index=1, moves=["disclose A.cost=-1", "conclude"])], seed=1)
    c = episode(False, [turn(index=1, moves=["conclude"])], status="errored", seed=2)  # kept out
    out = metrics.move_turns([a, b, c])
    assert out == {"turns": 3, "with_moves": 2, "rate": pytest.approx(2 / 3)}
    s = metrics.summarize([a, b, c])
    assert s["mental_state_appeals"] == pytest.approx(3 / 2)  # per scored episode: (3 + 0) / 2
    assert s["moves"] == out
    assert metrics.move_turns([])["rate"] is None


def test_disclosures_count_those_the_targets_stated_preferences_had_ruled_out():
    """Goal A. Once the target says it likes cost, A.cost=-1 lowers the goal and B.cost=+1 raises a rival."""
    a = episode(False, [turn(index=1, moves=["disclose A.cost=-1"], statements=["preference cost 1"]),  # said after
                        turn(index=2, moves=["disclose A.cost=-1", "disclose B.cost=+1", "disclose A.fun=+1"])])
    given = episode(False, [turn(index=1, moves=["disclose B.cost=+1", "ask_choice"])], seed=1, condition="revealed")
    given = given.model_copy(update={"scenario": replace(SCENARIO, preferences={"cost": 1, "fun": 1, "time": 0})})
    errored = episode(False, [turn(index=1, moves=["disclose B.cost=+1"])], status="errored", seed=2)
    assert metrics.disclosures([a, given, errored]) == {"made": 5, "ruled_out": 3}
    assert metrics.summarize([a])["disclosures"] == {"made": 4, "ruled_out": 2}


def test_interrupted_episode_is_not_scored():
    t = episode(True, blank(1), status="interrupted")
    assert not metrics.is_scored(t)
    assert metrics.success_rate([t])["rate"] is None
    running = episode(False, blank(1), status="running", seed=1)  # a run compared while it still plays
    errored = episode(False, [], status="errored", seed=2)
    summary = metrics.summarize([t, running, errored, episode(True, blank(1), seed=3)])
    assert (summary["scored"], summary["errored"], summary["unfinished"]) == (1, 1, 2)


def test_a_stored_game_scores_as_the_played_one(store, business):
    """The same numbers from a live game, the store's copy and a trajectory line read back."""
    played = [play(business, RevealAll(), RationalTarget(), personality=p, seed=i, listeners=[StoreListener(store)])
              for i, p in enumerate(("cooperative", "stubborn", "skeptical"))]
    stored = [session_episode(store, e.id) for e in played]
    from_lines = [Episode.model_validate(e.to_trajectory()) for e in played]
    assert metrics.summarize(stored) == metrics.summarize(played) == metrics.summarize(from_lines)
    assert metrics.paired(played, stored)["pairs"] == 3
