"""GRPO rewarded by the game: the rewards on hand-written replies, the prompt rows built from played games, and one
real (tiny) GRPO step on the embedded model that continues an adapter and records its run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import LabError
from engine.game.episode import play
from engine.pipeline.dataprep import turn_examples
from engine.pipeline.training import grpo, runs
from engine.pipeline.training.config import load_config
from engine.pipeline.training.data import REQUIRED, load_rows
from engine.players.prompts import assistant_text
from engine.players.registry import make_persuader, make_target
from tests.training_rows import chat_rows, write_rows


@pytest.fixture
def game(business):
    """The planner against a skeptical rational target: doubts draw from the target's seeded stream, so the replay
    must reproduce them."""
    return play(business, make_persuader("planner"), make_target("rational"), personality="skeptical", seed=3)


def state(row: dict) -> dict:
    return {name: row[name] for name in REQUIRED["grpo"] if name != "prompt"}


def score(row: dict, text: str) -> grpo.MoveScore:
    return grpo.score_move(text, **state(row))


def test_a_true_helpful_disclosure_outscores_silence_a_lie_and_an_unreadable_reply(game):
    # business_vacation: the goal A (Lisbon) is cheap (A.cost -1) and the target dislikes cost
    first = grpo.prompt_rows([game])[0]
    helpful = score(first, "MOVES: disclose A.cost=-1\nMESSAGE: Lisbon keeps the cost down.")
    silent = score(first, "MOVES: none\nMESSAGE: Let us talk about the off-site.")
    lie = score(first, "MOVES: disclose A.cost=+1\nMESSAGE: Lisbon costs more, I admit.")
    unreadable = score(first, "MOVES: fly_to_the_moon\nMESSAGE: Lisbon!")
    assert helpful.dense > silent.dense > lie.dense > unreadable.dense == grpo.PARSE_FAILURE
    assert lie.dense == pytest.approx(silent.dense - grpo.LIE_PENALTY)  # a refused lie changes nothing in the game
    assert {helpful.outcome, silent.outcome, lie.outcome, unreadable.outcome} == {None}  # the game goes on


def test_moves_format_rows_score_a_reply_without_a_message(game):
    """`reply=moves` rows carry their format, so a bare MOVES line is read, not scored as a parse failure."""
    first = grpo.prompt_rows([game], reply="moves")[0]
    assert first["reply"] == "moves"
    bare = grpo.score_move("MOVES: disclose A.cost=-1", **state(first), reply=first["reply"])
    with_message = score(first, "MOVES: disclose A.cost=-1\nMESSAGE: Lisbon keeps the cost down.")
    assert bare.dense == with_message.dense > grpo.PARSE_FAILURE
    assert score(first, "MOVES: disclose A.cost=-1").dense == grpo.PARSE_FAILURE  # an older (compact) file: no MESSAGE


def test_concluding_scores_the_games_outcome_and_the_replay_reproduces_the_recorded_game(game):
    rows = grpo.prompt_rows([game], reply="compact")
    assert game.turns[-1].moves[-1].kind == "conclude" and game.outcome.success
    last = rows[-1]
    # the planner's own last reply at the replayed state ends the game as it did when played
    assert score(last, assistant_text(game.turns[-1], reply="compact")).outcome == 1.0
    assert score(rows[0], "MOVES: conclude\nMESSAGE: Please decide now.").outcome == 0.0  # before any disclosure


def test_under_mindgames_rules_only_the_last_turn_ends_the_game(business):
    noisy = play(business, make_persuader("planner?noise=0.5"), make_target("rational"), personality="impulsive",
                 seed=5, rules="mindgames")
    rows = grpo.prompt_rows([noisy])  # replays as recorded: every message of the game is played
    assert len(rows) == business.max_turns
    assert score(rows[0], "MOVES: conclude\nMESSAGE: Decide now.").outcome is None  # a conclude ends nothing
    last = score(rows[-1], assistant_text(noisy.turns[-1], reply="compact"))
    assert last.outcome == float(noisy.outcome.success)


def test_prompt_rows_are_the_prompts_the_model_saw_with_its_state(game):
    rows = grpo.prompt_rows([game], reply="compact")
    examples = turn_examples(game, reply="compact")
    assert [r["prompt"] for r in rows] == [e.prompt for e in examples]
    assert [r["turn"] for r in rows] == list(range(1, len(game.turns) + 1))
    assert [len(json.loads(r["history"])) for r in rows] == list(range(len(game.turns)))
    assert {(r["personality"], r["seed"], r["condition"], r["rules"]) for r in rows} == {("skeptical", 3, "hidden", "lab")}


def test_games_that_cannot_be_replayed_are_refused(game):
    with pytest.raises(LabError, match="played against 'human'"):
        grpo.prompt_rows([game.model_copy(update={"target": game.target.model_copy(update={"kind": "human"})})])
    reseeded = game.model_copy(update={"target": game.target.model_copy(update={"seed": 4})})
    with pytest.raises(LabError, match="does not answer as recorded"):
        grpo.prompt_rows([reseeded])
    with pytest.raises(LabError, match=f"game {game.id}: unknown personality ''"):
        grpo.prompt_rows([game.model_copy(update={"target": game.target.model_copy(update={"personality": ""})})])
    with pytest.raises(LabError, match="no GRPO prompts"):
        grpo.prompt_rows([])


def test_group_sizes_and_rows_are_checked_before_anything_loads(tmp_path, store):
    with pytest.raises(LabError, match="multiple of num_generations"):
        grpo.check(load_config(None, {"data": "x", "output": "o", "batch_size": 2, "grad_accum": 1, "num_generations": 4}))
    with pytest.raises(LabError, match="at least 2"):
        grpo.check(load_config(None, {"data": "x", "output": "o", "num_generations": 1}))
    pairs = [{"prompt": r["messages"][:2], "completion": r["messages"][2:]} for r in chat_rows(2)]  # SFT rows
    with pytest.raises(LabError, match=r"train.jsonl:1: a grpo row needs prompt, scenario.*; missing scenario, turn"):
        load_rows(write_rows(tmp_path / "train.jsonl", pairs), "grpo")


@pytest.mark.slow
def test_one_grpo_step_continues_an_adapter_and_records_the_run(tmp_path, store, game):
    from peft import LoraConfig, get_peft_model

    from engine.pipeline.training import loop

    start = tmp_path / "start"  # an adapter of rank 4 to continue; the run's own lora_r (8) must not apply
    values = dict(data="-", output=str(tmp_path / "grpo"), max_steps=1, batch_size=2, grad_accum=1, num_generations=2,
                  max_completion_length=6, lora_r=8, lora_alpha=16, cpu_threads=1, save_steps=50)
    model, _, _ = loop.load_base(load_config(None, values))
    get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                     task_type="CAUSAL_LM")).save_pretrained(start)
    two_turns = game.model_copy(update={"turns": game.turns[:2]})
    result = grpo.train_on_games(load_config(None, values | {"init_adapter": str(start)}), store, [two_turns])

    out = Path(result["output"])
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    assert (out / "adapter_model.safetensors").exists()
    assert runs.read_reply_format(out) == "compact"
    assert len((out / grpo.PROMPTS_FILE).read_text().splitlines()) == 2
    row = runs.get_run(store, result["run_id"])
    assert (row["status"], row["method"], row["data_path"]) == ("finished", "grpo", str(out / grpo.PROMPTS_FILE))
    (step,) = store.training_steps(result["run_id"])
    assert "rewards/dense_reward/mean" in json.loads(step["logs_json"])  # the game's rewards reached trl
    assert store.db["models"].get(result["model_id"])["kind"] == "lora-grpo"
