"""Leaderboard from stored runs: one entry per run and condition, ranked, paired tests, three files."""

from __future__ import annotations

import json

import pytest

from engine.errors import LabError
from engine.evaluation import EvalConfig, evaluate, find_run
from engine.leaderboard import build, entries_for_runs, markdown, table, write

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
    assert "Turns with moves" in md and "Preference alignment by turn" in md
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
    run_id = find_run(store, "playing")["id"]
    store.db.execute("UPDATE sessions SET status = 'running' WHERE id = (SELECT id FROM sessions WHERE run_id = ? LIMIT 1)",
                     [run_id])  # as `compare` sees an episode in flight
    board = build(entries_for_runs(store, ["playing"]))
    entry = board["entries"][0]
    assert (entry["success"]["n"], entry["errored"], entry["unfinished"]) == (2, 0, 1)
    assert "Unfinished episodes, not in the rates (resume the run): random-hidden 1" in markdown(board)
    console = Console(width=200, record=True)
    console.print(table(board))
    assert "random-hidden 1" in console.export_text()
