"""`ptom-lab improve`: DAgger labels are the planner's move at the visited state, expert iteration keeps only won
games, the scenario sets stay apart, the store keeps every round, and (slow, the embedded model) a round that is
interrupted continues where it stopped and the next round trains from the last adapter's weights."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from engine.cli import main
from engine.errors import LabError
from engine.game.episode import play
from engine.game.generator import heldout_signatures, signature
from engine.game.moves import Move, parse_reply
from engine.game.scenario import load_path, write_jsonl
from engine.pipeline.dataprep import turn_examples
from engine.pipeline.improve import (
    ImproveConfig,
    curve,
    get_run,
    improve,
    open_run,
    planner_replies,
    round_data,
    scenario_files,
    training_mix,
    winning_turns,
)
from engine.pipeline.training import runs, sft
from engine.pipeline.training.config import load_config
from engine.players.persuaders.planner import Planner
from engine.players.prompts import assistant_text
from engine.players.registry import make_persuader
from engine.players.targets.rational import RationalTarget
from tests.test_tui_app import wait_for
from tests.training_rows import chat_rows, write_rows


@pytest.mark.parametrize("reply", ["full", "compact"])
def test_dagger_label_is_what_the_planner_did_in_its_own_game(business, reply):
    """Replayed over its own game, the planner writes, turn by turn, exactly the reply it played there."""
    ep = play(business, Planner(), RationalTarget(), personality="skeptical", seed=7)
    assert len(ep.turns) >= 2
    assert planner_replies(ep, reply) == [assistant_text(t, reply=reply) for t in ep.turns]


def test_dagger_labels_at_states_another_player_visited(business):
    """A random persuader's game: each label is a valid planner reply at that state, and the state's prompt is
    the one the game's player saw; the planner would not have played the random moves."""
    ep = play(business, make_persuader("random"), RationalTarget(), personality="cooperative", seed=3)
    data = round_data([ep], "dagger", "compact", round_=1)
    seen = turn_examples(ep, reply="compact")
    assert data.dagger_rows == len(ep.turns) == len(data.rows) and data.ei_rows == 0
    assert [r["messages"][:2] for r in data.rows] == [ex.prompt for ex in seen]
    labels = [parse_reply(r["messages"][2]["content"], business) for r in data.rows]
    assert all(p.ok for p in labels)
    assert [p.moves for p in labels] != [t.moves for t in ep.turns]
    assert {r["meta"]["source"] for r in data.rows} == {"dagger"} and data.rows[0]["meta"]["round"] == 1


def test_expert_iteration_keeps_the_good_turns_of_won_games_only(business):
    won = play(business, Planner(), RationalTarget(), personality="cooperative", seed=1)
    lost = play(business, make_persuader("random"), RationalTarget(), personality="stubborn", seed=2)
    assert won.outcome.success and not lost.outcome.success
    data = round_data([won, lost], "ei", "full", round_=2)
    assert (data.games, data.wins, data.ei_rows, data.dagger_rows) == (2, 1, len(won.turns), 0)
    assert [r["messages"][2]["content"] for r in data.rows] == [assistant_text(t) for t in won.turns]
    both = round_data([won, lost], "ei+dagger", "full", round_=2)
    assert (both.ei_rows, both.dagger_rows) == (len(won.turns), len(won.turns) + len(lost.turns))


class NeverConcludes(Planner):
    """The planner, asking for the choice where it would conclude: after a win it fills the turns as a
    finetuned model that seldom concludes does."""

    def act(self, view):
        turn = super().act(view)
        return replace(turn, moves=[m for m in turn.moves if m.kind != "conclude"] or [Move("ask_choice")])


def test_expert_iteration_keeps_the_turns_that_earned_the_win(business):
    ep = play(business, NeverConcludes(), RationalTarget(), personality="cooperative", seed=1)
    assert ep.outcome.success and len(ep.turns) == business.max_turns
    upto = winning_turns(ep)
    assert 1 < upto < len(ep.turns)
    assert any(st.kind == "choice" and st.subject == business.goal for st in ep.turns[upto - 1].statements)
    assert not any(st.kind == "choice" and st.subject == business.goal for t in ep.turns[: upto - 1]
                   for st in t.statements)
    assert {m.kind for t in ep.turns[upto:] for m in t.moves} == {"ask_choice"}  # the filler
    data = round_data([ep], "ei", "moves", round_=1, ei_turns="to_win")
    assert data.ei_rows == upto and [r["messages"][2]["content"] for r in data.rows] == [
        assistant_text(t, reply="moves") for t in ep.turns[:upto]]
    assert round_data([ep], "ei", "moves", round_=1).ei_rows == len(ep.turns)  # the default keeps every turn
    concluded = play(business, Planner(), RationalTarget(), personality="cooperative", seed=1)
    assert winning_turns(concluded) == len(concluded.turns)  # the turn that concluded is kept


def test_generated_scenario_sets_are_apart_from_each_other_and_the_held_out_set(tmp_path):
    cfg = ImproveConfig(out=str(tmp_path / "run"), n_train=6, n_val=5)
    (tmp_path / "run").mkdir()
    train, val = scenario_files(cfg)
    train_sigs = {signature(s) for s in load_path(train)}
    val_sigs = {signature(s) for s in load_path(val)}
    assert len(train_sigs) == 6 and len(val_sigs) == 5
    assert not train_sigs & val_sigs and not (train_sigs | val_sigs) & heldout_signatures()
    assert scenario_files(cfg) == (train, val)  # the same files on a rerun
    write_jsonl(load_path(val)[:2], tmp_path / "overlap.jsonl")
    with pytest.raises(LabError, match="shares scenario"):
        scenario_files(ImproveConfig(out=str(tmp_path / "run"), train_scenarios=val,
                                     val_scenarios=str(tmp_path / "overlap.jsonl")))
    with pytest.raises(LabError, match="held-out"):
        scenario_files(ImproveConfig(out=str(tmp_path / "run"), val_scenarios="scenarios/heldout.jsonl"))


def test_a_round_trains_on_every_round_so_far_and_a_fresh_sample_of_expert_rows(tmp_path):
    own = [write_rows(tmp_path / f"r{k}.jsonl", chat_rows(k + 2)) for k in (1, 2)]  # rounds 1 and 2: 3 and 4 rows
    expert = write_rows(tmp_path / "expert.jsonl", [{**r, "meta": {"source": "planner", "i": i}}
                                                    for i, r in enumerate(chat_rows(40))])
    cfg = ImproveConfig(out=str(tmp_path / "run"))
    assert training_mix(cfg, 2, own) == (chat_rows(3) + chat_rows(4), 0)  # DAgger: rounds 1 and 2
    assert training_mix(replace(cfg, aggregate=False), 2, own) == (chat_rows(4), 0)
    mixed = replace(cfg, expert_data=expert, expert_share=0.3)
    rows, n = training_mix(mixed, 2, own)
    assert n == 3 and len(rows) == 10 and rows[:7] == chat_rows(3) + chat_rows(4)  # 3 of 10 rows are the planner's
    assert len({r["meta"]["i"] for r in rows[7:]}) == 3
    assert training_mix(mixed, 2, own) == (rows, n)  # a rerun of the round: the same rows
    assert training_mix(mixed, 3, own)[0][7:] != rows[7:]  # another round: another sample
    assert training_mix(replace(mixed, expert_share=0.99), 2, own)[1] == 40  # never more than the file holds


def test_the_rounds_games_carry_the_persuader_options(tmp_path):
    from engine.pipeline.improve import model_spec

    cfg = ImproveConfig(out=str(tmp_path / "run"), conclude="stated")
    assert model_spec(cfg, "models/a", 0.7, "moves") == "local:models/a?reply=moves&temperature=0.7&conclude=stated"
    assert model_spec(replace(cfg, disclose="stated"), "models/a", 0, "moves").endswith("&conclude=stated&disclose=stated")
    assert "conclude" not in model_spec(replace(cfg, conclude="any"), "embedded", 0.0, "moves")
    with pytest.raises(LabError, match=r"disclose=some: unknown \(known: any, stated\)"):
        replace(cfg, disclose="some").check()


def test_a_run_stored_before_aggregation_is_not_continued_with_it(store, tmp_path):
    old = ImproveConfig(out=str(tmp_path / "run")).to_dict()
    for key in ("aggregate", "expert_data", "expert_share", "conclude", "disclose", "ei_turns"):  # as stored before them
        old.pop(key)
    store.add_improve_run({"id": "0123456789ab", "name": "run", "out_dir": str((tmp_path / "run").resolve()),
                           "status": "interrupted", "config_json": json.dumps(old), "start_model": "embedded",
                           "rounds": 3, "pid": 0})
    with pytest.raises(LabError, match=r"aggregate: False -> True\)"):
        open_run(store, ImproveConfig(out=str(tmp_path / "run")))
    with pytest.raises(LabError, match=r"ei_turns: 'all' -> 'to_win'\)"):
        open_run(store, ImproveConfig(out=str(tmp_path / "run"), aggregate=False, ei_turns="to_win"))
    assert open_run(store, ImproveConfig(out=str(tmp_path / "run"), aggregate=False))["id"] == "0123456789ab"


@pytest.mark.parametrize(("flags", "error"), [
    (["--adapter", "models/none"], "no LoRA adapter at 'models/none'"),
    (["--expert-share", "1"], "--expert-share must be between 0 and 1"),
    (["--expert-data", "data/none.jsonl"], "--expert-data: no file 'data/none.jsonl'"),
    (["--max-turns", "0"], "must be at least 1"),
    (["--method", "ppo"], "argument --method: invalid choice: 'ppo'"),
    (["--ei-turns", "some"], "argument --ei-turns: invalid choice: 'some'"),
])
def test_bad_settings_are_one_line(tmp_path, capsys, flags, error):
    try:
        code = main(["improve", "--db", str(tmp_path / "s.db"), "--out", str(tmp_path / "run"), *flags])
    except SystemExit as exc:  # argparse's own refusal of a flag's value
        code = exc.code
    assert code == 2 and error in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything was made


def test_rounds_are_stored_and_shown_as_a_curve(store, tmp_path, capsys):
    """`runs show` and `runs list` read improve runs from the store; the curve's p-value pairs the rounds' games."""
    store.add_improve_run({"id": "abc123def456", "name": "run", "out_dir": str(tmp_path), "status": "finished",
                           "config_json": json.dumps({"data": "ei"}), "start_model": "embedded", "rounds": 1, "pid": 0})
    store.put_improve_round("abc123def456", 0, status="finished", val_successes=1, val_n=4)
    store.put_improve_round("abc123def456", 1, status="training", games=8, wins=3, ei_rows=5)
    store.put_improve_round("abc123def456", 1, status="finished", val_successes=3, val_n=4)
    rows = curve(store, "abc123def456")
    assert [(r["round"], r["status"], r["rate"]) for r in rows] == [(0, "finished", 0.25), (1, "finished", 0.75)]
    assert rows[1]["wins"] == 3 and rows[1]["ei_rows"] == 5  # a later write keeps the earlier fields
    assert main(["runs", "show", "abc123", "--db", store.path]) == 0
    out = capsys.readouterr().out
    assert "round 1  ##############################----------  3/4 75%" in out
    assert "round 0  ##########------------------------------  1/4 25%" in out
    assert main(["runs", "list", "--json", "--db", store.path]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["method"], r["step"], r["total_steps"]) for r in listed] == [("abc123def456", "improve", 1, 1)]
    assert main(["runs", "show", "abc123", "--json", "--db", store.path]) == 0
    assert [r["val_successes"] for r in json.loads(capsys.readouterr().out)["rounds"]] == [1, 3]


class CaptureStart(TrainerCallback):
    """The LoRA weights the trainer starts from."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


@pytest.mark.slow
def test_init_adapter_trains_on_from_the_adapters_weights(tmp_path, store):
    from safetensors.torch import load_file

    tiny = dict(data=write_rows(tmp_path / "train.jsonl", chat_rows(2)), max_steps=1, batch_size=2, max_seq_len=48,
                lora_r=4, lora_alpha=8, cpu_threads=1, lr=0.01)
    first = sft.train(load_config(None, {**tiny, "output": str(tmp_path / "a")}), store)
    capture = CaptureStart()
    second = sft.train(load_config(None, {**tiny, "output": str(tmp_path / "b"), "init_adapter": first["output"]}),
                       store, callbacks=[capture])
    saved = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    start = {k.replace(".default", ""): v for k, v in capture.weights.items()}
    assert saved.keys() == start.keys() and all(torch.equal(saved[k], start[k]) for k in saved)
    assert any(v.abs().sum() > 0 for k, v in saved.items() if "lora_B" in k)  # not the zero init of a fresh LoRA
    ended = load_file(str(tmp_path / "b" / "adapter_model.safetensors"))
    assert any(not torch.equal(saved[k], ended[k]) for k in saved)  # and it trained on
    assert runs.run_config(runs.get_run(store, second["run_id"]))["init_adapter"] == first["output"]


@pytest.mark.slow
def test_an_interrupted_round_continues_and_the_next_trains_from_its_adapter(tmp_path, store, capsys):
    """Killed before training round 1: the rerun replays no game, trains, validates; a second round (asked for on
    the rerun) starts from round 1's adapter; every validation plays the same episodes."""
    (tmp_path / "train.yaml").write_text("batch_size: 1\ngrad_accum: 1\nlora_r: 4\nlora_alpha: 8\ncpu_threads: 1\n")
    cfg = ImproveConfig(out=str(tmp_path / "run"), n_train=1, n_val=1, rounds=1, games_per_scenario=1, max_turns=2,
                        steps=1, max_tokens=24, reply_format="compact", data="dagger",
                        train_config=str(tmp_path / "train.yaml"), concurrency=2)

    def stop_at_training(text: str) -> None:
        if ": training " in text:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        improve(store, cfg, say=stop_at_training)
    run = get_run(store, cfg.out)
    assert run["status"] == "interrupted"
    r0, r1 = store.improve_rounds(run["id"])
    assert r0["status"] == "finished" and r1["status"] == "training" and r1["train_run_id"] is None
    assert 1 <= r1["dagger_rows"] <= 2 and Path(r1["data_path"]).is_file()
    games = {s["id"]: s["created_at"] for s in store.run_sessions(r1["play_run_id"])}

    flags = ["--out", cfg.out, "--n-train", "1", "--n-val", "1", "--rounds", "2", "--games-per-scenario", "1",
             "--max-turns", "2", "--steps", "1", "--max-tokens", "24", "--reply-format", "compact", "--data", "dagger",
             "--train-config", cfg.train_config, "--concurrency", "2"]
    assert main(["improve", "--db", store.path, "--json", *flags]) == 0  # the same run, one round more
    curve_rows = json.loads(capsys.readouterr().out)
    assert [r["round"] for r in curve_rows] == [0, 1, 2] and all(r["val_n"] == 1 for r in curve_rows)
    assert get_run(store, run["id"])["status"] == "finished"
    rounds = store.improve_rounds(run["id"])
    assert [r["status"] for r in rounds] == ["finished"] * 3
    assert {s["id"]: s["created_at"] for s in store.run_sessions(rounds[1]["play_run_id"])} == games
    second = runs.run_config(runs.get_run(store, rounds[2]["train_run_id"]))
    assert second["init_adapter"] == rounds[1]["adapter"] and rounds[2]["adapter"] != rounds[1]["adapter"]
    keys = [sorted(s["meta_json"] and json.loads(s["meta_json"])["episode_key"]
                   for s in store.run_sessions(r["eval_run_id"])) for r in rounds]
    assert keys[0] == keys[1] == keys[2] and len(keys[0]) == 1
    assert main(["runs", "show", run["id"], "--db", store.path]) == 0
    out = capsys.readouterr().out
    assert "validation success by round" in out and "round 2  " in out and "p=" in out


def _stored_run(store, out: str) -> str:
    """An improve run of two rounds as the store holds it (round 0 = the start model)."""
    store.add_improve_run({"id": "feed00000001", "name": "run", "out_dir": out, "status": "finished",
                           "config_json": json.dumps({"data": "ei+dagger"}), "start_model": "embedded", "rounds": 2,
                           "pid": 0})
    for k, wins in enumerate((1, 2, 4)):
        store.put_improve_round("feed00000001", k, status="finished", val_successes=wins, val_n=8)
    return "feed00000001"


async def test_the_training_pane_draws_an_improve_runs_curve_and_refuses_a_bad_form(tmp_path):
    from textual.widgets import Input, Label, Select
    from tui_fixtures import build_store

    from ptom_tui.app import LabApp

    path = str(tmp_path / "s.db")
    store = build_store(path)
    run_id = _stored_run(store, str(tmp_path / "run"))
    store.close()
    app = LabApp(path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        pane = app.query_one("TrainingPane")
        status = app.query_one("#training-status")
        await wait_for(pilot, lambda: pane.run_id == run_id and "validation success" in str(status.content))
        text = str(status.content)
        assert "improve  finished" in text
        assert "round 0  #---------  1/8 12%" in text and "round 2  #####-----  4/8 50%" in text
        assert pane.points == [(0, 12.5), (1, 25.0), (2, 50.0)]
        assert app.query_one("#training-progress").total == 2
        table = app.query_one("#training-runs")
        assert table.get_row(run_id)[2] == "improve"
        await pilot.click("#training-improve")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ImproveForm"
                       and app.screen.query_one("#form-data", Select).value == "ei+dagger")  # filled in on mount
        labels = [str(label.content) for label in app.screen.query(Label)]
        assert "learn from" in labels and "steps per round" in labels and "conclude" in labels
        assert "won games' turns" in labels
        app.screen.query_one("#form-adapter", Input).value = "models/none"
        app.screen.query_one("#form-rounds", Input).value = "2"
        app.screen.query_one("#form-conclude", Select).value = "stated"
        app.screen.query_one("#form-disclose", Select).value = "stated"
        assert app.screen.query_one("#form-ei_turns", Select).value == "all"  # the default, filled in
        app.screen.query_one("#form-ei_turns", Select).value = "to_win"
        await pilot.pause()
        await pilot.click("#form-start")
        await wait_for(pilot, lambda: any("no LoRA adapter at 'models/none'" in str(n.message)
                                          for n in app._notifications))
        assert not app.jobs and (pane.improve_form["rounds"], pane.improve_form["conclude"]) == ("2", "stated")
        settings = pane.improve_job({**pane.improve_form, "adapter": ""}).settings
        assert (settings.conclude, settings.disclose, settings.ei_turns) == ("stated", "stated", "to_win")


def test_the_training_form_builds_an_improve_job(tmp_path):
    from engine.pipeline.jobs import improve_job

    job = improve_job(ImproveConfig(out=str(tmp_path / "run"), rounds=2, data="ei"), str(tmp_path / "s.db"))
    assert (job.kind, job.run, job.settings.rounds, job.describe()) == ("improve", str(tmp_path / "run"), 2,
                                                                        f"improve run {tmp_path / 'run'}")
