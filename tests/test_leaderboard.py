"""Leaderboard from stored runs: one entry per run and condition, ranked, paired tests, three files."""

from __future__ import annotations

import json

import pytest

from engine.errors import LabError
from engine.pipeline.evaluation import EvalConfig, evaluate
from engine.pipeline.leaderboard import build, entries_for_runs, markdown, table, write

HELDOUT = "scenarios/heldout.jsonl"


@pytest.fixture
def board(store):
    evaluate(store, EvalConfig(model="planner", scenarios=HELDOUT, num_eval=8, condition="both"), name="planner")
    evaluate(store, EvalConfig(model="random", scenarios=HELDOUT, num_eval=8, max_turns=2), name="random")
    return build(entries_for_runs(store, ["random", "planner"]))


def test_entries_split_by_condition_and_rank_by_success(board):
    labels = [e["label"] for e in board["entries"]]
    assert set(labels) == {"planner-hidden", "planner-revealed", "random-hidden"}
    rates = [e["success"]["rate"] for e in board["entries"]]
    assert rates == sorted(rates, reverse=True)
    assert board["entries"][-1]["label"] == "random-hidden"
    assert len(board["pairwise"]) == 3
    hidden_vs_revealed = next(p for p in board["pairwise"] if {p["a"], p["b"]} == {"planner-hidden", "planner-revealed"})
    assert hidden_vs_revealed["pairs"] == 8  # matched across conditions on scenario, seed and personality


def test_markdown_json_and_png(board, tmp_path):
    md = markdown(board)
    assert md.count("\n| ") >= 3 + 3 and "McNemar" in md
    assert "Turns with moves" in md and "Preference alignment by turn" in md and "Disclosures ruled out / made" in md
    told = board["entries"][0]["disclosures"]  # the planner's 8 games: none ruled out (3 of 385 on all 100)
    assert told["made"] > 0 and told["ruled_out"] == 0 and f"| 0 / {told['made']} |" in md
    by_turn = next(line for line in md.splitlines() if line.startswith("| planner-hidden | ") and "turn" not in line
                   and line.count("|") < 12)  # the planner's row of the by-turn table
    first = board["entries"][[e["label"] for e in board["entries"]].index("planner-hidden")]
    assert by_turn.split(" | ")[1] == f"{100 * first['preference_alignment']['by_turn'][1]:.0f}%"
    assert markdown(json.loads(json.dumps(board))) == md  # the same from the written JSON (string turn keys)
    paths = write(board, tmp_path / "lb")
    assert json.loads(paths["json"].read_text())["entries"][0]["label"].startswith("planner")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_run_is_a_lab_error(store):
    with pytest.raises(LabError, match="no evaluation run 'nope'"):
        entries_for_runs(store, ["nope"])


def test_a_run_still_playing_shows_its_unfinished_episodes_apart_from_errors(store):
    from rich.console import Console

    evaluate(store, EvalConfig(model="random", scenarios=HELDOUT, num_eval=3, max_turns=2), name="playing")
    run_id = store.find_eval_run("playing")["id"]
    store.db.execute("UPDATE sessions SET status = 'running' WHERE id = (SELECT id FROM sessions WHERE run_id = ? LIMIT 1)",
                     [run_id])  # as `compare` sees an episode in flight
    board = build(entries_for_runs(store, ["playing"]))
    entry = board["entries"][0]
    assert (entry["success"]["n"], entry["errored"], entry["unfinished"]) == (2, 0, 1)
    assert "Unfinished episodes, not in the rates (resume the run): random-hidden 1" in markdown(board)
    console = Console(width=200, record=True)
    console.print(table(board))
    assert "random-hidden 1" in console.export_text()


def test_labels_drop_a_specs_options_and_the_markdown_keeps_them(store):
    evaluate(store, EvalConfig(model="random", scenarios=HELDOUT, num_eval=2, max_turns=2), name="tuned")
    evaluate(store, EvalConfig(model="reveal-all", scenarios=HELDOUT, num_eval=2, max_turns=2), name="base")
    spec = "local:models/ptom-smollm2?temperature=0&max_tokens=320&dtype=bfloat16"
    store.db["eval_runs"].update(store.find_eval_run("tuned")["id"], {"persuader": spec})  # as a local run stores it
    store.db["eval_runs"].update(store.find_eval_run("base")["id"], {"persuader": "local?temperature=0"})
    board = build(entries_for_runs(store, ["tuned", "base"]))
    assert {e["label"] for e in board["entries"]} == {"local:models/ptom-smollm2-hidden", "local-hidden"}
    assert f"- local:models/ptom-smollm2-hidden: run `tuned`, persuader `{spec}`" in markdown(board)


def test_runs_whose_short_specs_collide_are_labelled_by_run_name(store):
    for name in ("t0", "t1"):
        evaluate(store, EvalConfig(model="random", scenarios=HELDOUT, num_eval=2, max_turns=2), name=name)
        store.db["eval_runs"].update(store.find_eval_run(name)["id"], {"persuader": f"local?temperature={name[1]}"})
    board = build(entries_for_runs(store, ["t0", "t1"]))
    assert {e["label"] for e in board["entries"]} == {"t0-hidden", "t1-hidden"}


def test_the_terminal_table_shows_every_column_at_80_and_whole_labels_at_120(board):
    from rich.console import Console

    narrow, wide = Console(width=80, record=True), Console(width=120, record=True)
    narrow.print(table(board))
    wide.print(table(board))
    narrow_text, wide_text = narrow.export_text(), wide.export_text()
    header = next(line for line in narrow_text.splitlines() if " agent " in line)
    assert all(f" {h} " in f"{header} " for h in ("n", "turns", "align", "Brier", "moves", "lies", "err")), header
    assert "…" not in narrow_text  # before, the labels and headers were cut to "plan…"
    assert "planner-revealed" in wide_text and "random-hidden" in wide_text


def test_stored_board_ranks_the_saved_summaries_as_build_ranks_the_episodes(board, store):
    """The TUI's leaderboard (`stored_board`, from each run's saved `results_json`) has the same entries, order
    and rows as `build` over the stored episodes, a `both` run split by condition, and no pairwise rows."""
    from engine.pipeline.leaderboard import rows, stored_board

    stored = stored_board(store.eval_runs())
    assert [e["label"] for e in stored["entries"]] == [e["label"] for e in board["entries"]]
    assert stored["pairwise"] == []
    keep = ("rank", "label", "n", "rate", "ci_low", "turns_mean", "alignment", "cf_accuracy", "lies", "cost_usd")
    assert [{k: r[k] for k in keep} for r in rows(stored)] == [{k: r[k] for k in keep} for r in rows(board)]


def test_by_personality_splits_a_mixed_run(store):
    """`metrics.by_personality`: one summary per personality the `mix` run drew, adding up to the whole run."""
    from engine.pipeline.metrics import by_personality, summarize

    evaluate(store, EvalConfig(model="greedy", scenarios=HELDOUT, num_eval=10, personality="mix"), name="mixed")
    (entry,) = entries_for_runs(store, ["mixed"])
    split = by_personality(entry.episodes)
    assert len(split) > 1 and list(split) == sorted(split)
    assert sum(s["success"]["n"] for s in split.values()) == summarize(entry.episodes)["success"]["n"] == 10
    assert sum(s["success"]["successes"] for s in split.values()) == entry.summary["success"]["successes"]
    for personality, summary in split.items():
        mine = [e for e in entry.episodes if e.target.personality == personality]
        assert summary == summarize(mine)
