"""Evaluation runs with rule-based players: deterministic episodes, the run row, resume, errors, threads."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from engine.errors import LabError
from engine.game.interfaces import PersuaderTurn
from engine.game.record import Episode
from engine.pipeline.evaluation import EvalConfig, evaluate, plan_episodes, run_episodes
from engine.pipeline.metrics import paired
from engine.players.persuaders.baselines import RevealAll
from engine.players.registry import register_persuader

HELDOUT = "scenarios/heldout.jsonl"


class FlakyPersuader(RevealAll):
    """Fails (like an API error) or is interrupted on chosen scenarios, to exercise the run's error paths."""

    name = "flaky"
    fail: set[str] = set()
    interrupt: set[str] = set()

    def start(self, view, seed):
        super().start(view, seed)
        self.sid = view.scenario.id

    def act(self, view):
        if self.sid in self.interrupt:
            raise KeyboardInterrupt
        if self.sid in self.fail:
            raise RuntimeError("HTTP 529 overloaded")
        return super().act(view)


class SlowPersuader(FlakyPersuader):
    """Talks without concluding, a tenth of a second a turn: an episode that is still in flight at Ctrl-C."""

    def act(self, view):
        if self.sid in self.interrupt and view.turn == 3:  # Ctrl-C once the other episode is surely under way
            raise KeyboardInterrupt
        time.sleep(0.1)
        return PersuaderTurn(message="Let me think about it.")


register_persuader("test-flaky", lambda _: FlakyPersuader(), "test only")
register_persuader("test-slow", lambda _: SlowPersuader(), "test only")


@pytest.fixture(autouse=True)
def _reset_flaky():
    FlakyPersuader.fail, FlakyPersuader.interrupt = set(), set()


def test_plan_is_deterministic_and_mix_is_shared_across_conditions():
    config = EvalConfig(model="random", num_eval=6, condition="both", seeds=2, personality="mix", max_turns=3)
    specs = plan_episodes(config)
    assert len(specs) == 6 * 2 * 2
    assert [s.key for s in specs] == [s.key for s in plan_episodes(config)]
    assert all(s.scenario.max_turns == 3 for s in specs)
    by_case: dict[tuple, set[str]] = {}
    for s in specs:
        by_case.setdefault((s.scenario.id, s.seed), set()).add(s.personality)
    assert all(len(p) == 1 for p in by_case.values())
    assert len({next(iter(p)) for p in by_case.values()}) > 1  # 'mix' really mixes
    with pytest.raises(LabError, match="condition"):
        plan_episodes(EvalConfig(model="random", condition="sideways"))


def test_evaluate_logs_sessions_tied_to_the_run(store):
    res = evaluate(store, EvalConfig(model="reveal-all", scenarios=HELDOUT, num_eval=5), name="ra")
    assert (res.played, res.skipped) == (5, 0)
    row = store.find_eval_run("ra")
    assert row["status"] == "finished" and row["n_planned"] == 5
    assert json.loads(row["config_json"])["model"] == "reveal-all"
    assert json.loads(row["results_json"])["success"]["n"] == 5
    sessions = store.run_sessions(row["id"])
    assert len(sessions) == 5 and {s["kind"] for s in sessions} == {"evaluate"}
    assert res.results["success"] == json.loads(row["results_json"])["success"]


def test_errored_episode_is_counted_and_resume_replays_only_it(store):
    FlakyPersuader.fail = {"heldout-20261129-00001"}
    config = EvalConfig(model="test-flaky", scenarios=HELDOUT, num_eval=4)
    first = evaluate(store, config, name="flaky")
    assert first.results["errored"] == 1 and first.results["success"]["n"] == 3
    errs = [e.error for e in run_episodes(store, first.run["id"]) if e.status == "errored"]
    assert errs and "529" in errs[0]
    FlakyPersuader.fail = set()
    again = evaluate(store, config, name="flaky")
    assert (again.played, again.skipped) == (1, 3)
    assert again.results["errored"] == 0 and again.results["success"]["n"] == 4
    assert store.count_sessions(kind="evaluate") == 4  # replayed under the same id, not duplicated


def test_ctrl_c_marks_the_run_interrupted_and_resume_finishes_it(store):
    FlakyPersuader.interrupt = {"heldout-20261129-00002"}
    config = EvalConfig(model="test-flaky", scenarios=HELDOUT, num_eval=5)
    with pytest.raises(KeyboardInterrupt):
        evaluate(store, config, name="ctrl-c")
    assert store.find_eval_run("ctrl-c")["status"] == "interrupted"
    FlakyPersuader.interrupt = set()
    res = evaluate(store, config, name="ctrl-c")
    assert res.skipped == 2 and res.played == 3 and res.results["success"]["n"] == 5


def test_ctrl_c_stops_episodes_in_flight_after_their_turn(store):
    FlakyPersuader.interrupt = {"heldout-20261129-00000"}
    config = EvalConfig(model="test-slow", scenarios=HELDOUT, num_eval=2, max_turns=20)
    with pytest.raises(KeyboardInterrupt):
        evaluate(store, config, name="stop", concurrency=2)
    run_id = store.find_eval_run("stop")["id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the other episode's thread ends on its own, after evaluate has returned
        (other,) = [e for e in run_episodes(store, run_id) if e.scenario.id.endswith("00001")]
        if other.status != "running":
            break
        time.sleep(0.05)
    assert other.status == "interrupted" and 1 <= len(other.turns) < 10  # not played to its 20th turn


def test_same_name_with_other_settings_is_refused(store):
    evaluate(store, EvalConfig(model="random", scenarios=HELDOUT, num_eval=2), name="r")
    with pytest.raises(LabError, match="num_eval"):
        evaluate(store, EvalConfig(model="random", scenarios=HELDOUT, num_eval=3), name="r")


def test_threads_give_the_same_episodes_as_one_at_a_time(store):
    config = EvalConfig(model="greedy", scenarios=HELDOUT, num_eval=12, personality="mix")
    one = evaluate(store, config, name="seq", concurrency=1)
    many = evaluate(store, config, name="par", concurrency=4)

    def outcomes(run):
        return {(e.scenario.id, e.target.personality): e.outcome for e in run_episodes(store, run)}

    assert outcomes(one.run["id"]) == outcomes(many.run["id"])
    assert one.results["success"] == many.results["success"]


def test_list_runs_newest_first_with_the_episodes_a_running_run_has_done(store):
    config = EvalConfig(model="reveal-all", scenarios=HELDOUT, num_eval=3)
    evaluate(store, config, name="older")
    time.sleep(0.01)
    evaluate(store, EvalConfig(model="random", scenarios=HELDOUT, num_eval=2), name="newer")
    assert [r["name"] for r in store.eval_runs()] == ["newer", "older"]
    assert [r["done"] for r in store.eval_runs()] == [0, 0]  # counted only while a run is running
    store.db["eval_runs"].update(store.find_eval_run("older")["id"], {"status": "running"})  # as if still playing
    assert {r["name"]: r["done"] for r in store.eval_runs()} == {"newer": 0, "older": 3}
    assert [r["name"] for r in store.eval_runs(limit=1)] == ["newer"]


def test_episode_draws_differ_across_scenarios_and_repeats(store, tmp_path):
    """Copies of one game under other ids: the random agent plays each differently (no longer one draw repeated)."""
    from engine.game.scenario import load_file, write_jsonl

    base = load_file(HELDOUT)[0]
    copies = tmp_path / "copies.jsonl"
    write_jsonl([replace(base, id=f"copy-{i}") for i in range(8)], copies)
    res = evaluate(store, EvalConfig(model="random", scenarios=str(copies), num_eval=8, seeds=2), name="copies")
    moves = [tuple(tuple(t.moves) for t in e.turns) for e in run_episodes(store, res.run["id"])]
    assert len(moves) == 16 and len(set(moves)) >= 12
    config = EvalConfig(model="random", scenarios=str(copies), num_eval=8, seeds=2)
    assert len({s.seed for s in plan_episodes(config)}) == 16


def test_replications_differ_and_resume_checks_the_seed(store):
    def successes(seed: int) -> int:
        config = EvalConfig(model="random", scenarios=HELDOUT, num_eval=60, seed=seed)
        return evaluate(store, config, name=f"rep{seed}").results["success"]["successes"]

    assert successes(0) != successes(1)
    with pytest.raises(LabError, match="seed"):
        evaluate(store, EvalConfig(model="random", scenarios=HELDOUT, num_eval=60, seed=2), name="rep0")


def test_every_agent_meets_the_same_target_on_the_same_episode(store):
    """Pairing: two agents' targets share seed, personality and (for the same moves) every reply."""
    config = EvalConfig(model="greedy", scenarios=HELDOUT, num_eval=10, seeds=2, personality="mix")
    greedy = run_episodes(store, evaluate(store, config, name="g").run["id"])
    again = run_episodes(store, evaluate(store, replace(config, model="test-flaky"), name="f").run["id"])

    def targets(episodes: list[Episode]) -> set[tuple]:
        return {(e.scenario.id, e.target.seed, e.target.personality) for e in episodes}

    planned = {(s.scenario.id, s.seed, s.personality) for s in plan_episodes(config)}
    assert targets(greedy) == targets(again) == planned
    assert len({seed for _, seed, _ in planned}) == 20 and len({p for _, _, p in planned}) > 1
    assert paired(greedy, again)["pairs"] == 20


def test_an_adapters_format_warning_is_kept_with_its_run(store, tmp_path):
    """A real (tiny) LoRA adapter recorded as trained on prompt layout 1: the run's row keeps the warning that the
    CLI prints, so the TUI's Evaluation pane can show it for a run it started in a child process."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.llm.embedded import embedded_model_dir
    from engine.llm.local import release
    from engine.pipeline.training import runs

    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32)
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], lora_alpha=4)).save_pretrained(tmp_path / "old")
    runs.write_reply_format(tmp_path / "old", "moves", {"moves": 1}, prompt=1)
    notes: list[str] = []
    config = EvalConfig(model=f"local:{tmp_path / 'old'}?max_tokens=4&temperature=0", num_eval=1, max_turns=1)
    result = evaluate(store, config, name="old-layout", on_note=notes.append)
    release(str(tmp_path / "old"))
    assert len(notes) == 1 and "trained on prompt layout 1" in notes[0]
    assert result.run["notes"] == notes[0] and store.find_eval_run("old-layout")["notes"] == notes[0]
