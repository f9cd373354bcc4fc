"""Each metric on a hand-made case whose answer is worked out by hand."""

from __future__ import annotations

import math

import pytest

from engine.pipeline import metrics


def traj(success: bool, turns: list[dict], *, status: str = "finished", sid: str = "s1", seed: int = 0,
         condition: str = "hidden", prefs: dict | None = None, violations: int = 0) -> dict:
    return {
        "id": f"{sid}-{seed}-{condition}",
        "scenario": {"id": sid, "preferences": prefs if prefs is not None else {"cost": -1, "fun": 1, "time": 0}},
        "target": {"kind": "rational", "personality": "cooperative", "seed": seed},
        "condition": condition,
        "status": status,
        "turns": turns,
        "outcome": None if status != "finished" else {"choice": "A" if success else "B", "success": success,
                                                      "turns": len(turns), "violations": violations},
    }


def belief(cost: str, fun: str, time: str) -> dict:
    def dist(level):
        return {k: (0.8 if k == level else 0.1) for k in ("like", "neutral", "dislike")}
    return {"preferences": {"cost": dist(cost), "fun": dist(fun), "time": dist(time)}}


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
    trajs = [traj(True, [{}] * 2, seed=0), traj(True, [{}] * 5, seed=1), traj(False, [{}] * 8, seed=2),
             traj(False, [], status="errored", seed=3)]
    rate = metrics.success_rate(trajs)
    assert (rate["successes"], rate["n"]) == (2, 3)
    assert rate["ci95"] == list(metrics.wilson(2, 3))
    assert metrics.turns_to_success(trajs) == {"mean": 3.5, "median": 3.5}
    assert metrics.turns_to_success([traj(False, [{}])]) == {"mean": None, "median": None}
    summary = metrics.summarize(trajs)
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
    t = traj(True, [
        {"index": 1, "belief": belief("like", "like", "like")},       # 1 of 3 right
        {"index": 2, "belief": belief("dislike", "like", "neutral")},  # 3 of 3
    ])
    u = traj(False, [{"index": 1, "belief": None}], seed=1)            # no belief: 0 of 3
    out = metrics.preference_alignment([t, u])
    assert out["final"] == pytest.approx(3 / 6)
    assert out["by_turn"] == {1: pytest.approx(1 / 6), 2: pytest.approx(1.0)}
    assert out["coverage"] == pytest.approx(2 / 3)
    assert metrics.preference_alignment([u])["final"] is None


def test_counterfactual_quality():
    turns = [
        {"index": 1, "counterfactual": {"predicted_choice": "B", "p_goal_after": 0.2}, "target_state": {"favourite": "B"}},
        {"index": 2, "counterfactual": {"predicted_choice": "B", "p_goal_after": 0.9}, "target_state": {"favourite": "A"}},
        {"index": 3, "counterfactual": None, "target_state": {"favourite": "A"}},
    ]
    out = metrics.counterfactual_quality([traj(True, turns)])
    assert out["choice_accuracy"] == 0.5 and out["n_choices"] == 2
    assert out["brier"] == pytest.approx(((0.2 - 1) ** 2 + (0.9 - 1) ** 2) / 2)


def test_usage_violations_unparseable():
    turns = [
        {"index": 1, "usage": {"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.001},
         "target_usage": {"input_tokens": 50, "output_tokens": 10, "cost_usd": 0.0005}},
        {"index": 2, "parse_ok": False, "usage": {"input_tokens": 1, "output_tokens": 2}},
    ]
    s = metrics.summarize([traj(False, turns, violations=2)])
    assert s["usage"] == {"input_tokens": 151, "output_tokens": 32, "cost_usd": 0.0015}
    assert s["violations"] == 2 and s["unparseable"] == 1


def test_paired_matches_episodes_and_falls_back_across_conditions():
    a = [traj(True, [{}], seed=i) for i in range(6)]
    b = [traj(i == 0, [{}], seed=i) for i in range(6)] + [traj(True, [{}], seed=9)]
    p = metrics.paired(a, b)
    assert (p["pairs"], p["both"], p["only_a"], p["only_b"]) == (6, 1, 5, 0)
    assert p["p_value"] == pytest.approx(2 / 32)
    revealed = [traj(True, [{}], seed=i, condition="revealed") for i in range(6)]
    assert metrics.paired(b, revealed)["pairs"] == 6
    across = metrics.paired(b, revealed)  # matched without the condition: seed 0 both won, seeds 1-5 only B
    assert (across["both"], across["only_a"], across["only_b"], across["neither"]) == (1, 0, 5, 0)
    assert not math.isnan(p["p_value"])


def test_move_turns_and_mental_state_appeals():
    a = traj(True, [{"index": 1, "moves": ["ask_preference cost"]}, {"index": 2, "moves": []}])
    a["outcome"]["mental_state_appeals"] = 3
    b = traj(False, [{"index": 1, "moves": ["disclose A.cost=-1", "conclude"]}], seed=1)
    c = traj(False, [{"index": 1, "moves": ["conclude"]}], status="errored", seed=2)  # kept out
    out = metrics.move_turns([a, b, c])
    assert out == {"turns": 3, "with_moves": 2, "rate": pytest.approx(2 / 3)}
    s = metrics.summarize([a, b, c])
    assert s["mental_state_appeals"] == pytest.approx(3 / 2)  # per scored episode: (3 + 0) / 2
    assert s["moves"] == out
    assert metrics.move_turns([])["rate"] is None


def test_interrupted_episode_is_not_scored():
    t = traj(True, [{}], status="interrupted")
    assert not metrics.is_scored(t)
    assert metrics.success_rate([t])["rate"] is None
    running = traj(False, [{}], status="running", seed=1)  # a run compared while it still plays
    errored = traj(False, [], status="errored", seed=2)
    summary = metrics.summarize([t, running, errored, traj(True, [{}], seed=3)])
    assert (summary["scored"], summary["errored"], summary["unfinished"]) == (1, 1, 2)
