"""`ptom-lab evaluate` and `ptom-lab compare` end to end with rule-based players."""

from __future__ import annotations

import json

from engine.cli import main


def test_evaluate_prints_results_and_resumes(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    args = ["evaluate", "--db", db, "--model", "greedy", "--scenarios", "scenarios/heldout.jsonl",
            "--num-eval", "6", "--personality", "mix", "--concurrency", "2", "--name", "g"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "6 played, 0 resumed" in out and "success" in out and "95% CI" in out
    assert main(args) == 0
    assert "0 played, 6 resumed" in capsys.readouterr().out


def test_compare_models_writes_the_leaderboard(tmp_path, capsys):
    db, out_dir = str(tmp_path / "s.db"), tmp_path / "lb"
    args = ["compare", "--db", db, "--models", "reveal-all,random", "--num-eval", "5", "--max-turns", "3",
            "--out", str(out_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Leaderboard" in out and "McNemar" in out
    board = json.loads((out_dir / "leaderboard.json").read_text())
    assert {e["agent"] for e in board["entries"]} == {"reveal-all", "random"}
    assert (out_dir / "leaderboard.md").exists() and (out_dir / "leaderboard.png").exists()
    # the runs are stored: compare them again by name
    names = [e["run"] for e in board["entries"]]
    assert main(["compare", "--db", db, *names, "--out", str(out_dir)]) == 0


def test_bad_input_is_one_line(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    assert main(["evaluate", "--db", db, "--model", "nobody", "--num-eval", "1"]) != 0
    assert "unknown persuader 'nobody'" in capsys.readouterr().err
    assert main(["compare", "--db", db]) != 0
    assert "compare:" in capsys.readouterr().err


def test_api_failure_errors_one_episode_and_the_run_goes_on(tmp_path, capsys, monkeypatch):
    from tests.fake_api import FakeAPI, point_sdks_at

    with FakeAPI("MOVES: conclude\nMESSAGE: Please decide now.") as api:
        point_sdks_at(api, monkeypatch)
        api.fail_with([500] * 5)  # the SDK's first try and 4 retries of the first episode's first call
        args = ["evaluate", "--db", str(tmp_path / "s.db"), "--model", "openai:gpt-4o-mini", "--num-eval", "3",
                "--name", "api"]
        assert main(args) == 0
    captured = capsys.readouterr()
    assert "errored: OpenAI request for gpt-4o-mini failed: HTTP 500" in captured.err  # with the progress bar
    assert "success        " in captured.out and "/2 = " in captured.out  # 2 scored episodes: the errored one is out
    assert "errored 1 (not in the rates)" in captured.out
    assert "tokens 0+0" not in captured.out  # the two played episodes' usage is counted


def test_both_conditions_are_also_reported_apart(tmp_path, capsys):
    args = ["evaluate", "--db", str(tmp_path / "s.db"), "--model", "planner", "--num-eval", "4", "--condition", "both",
            "--seeds", "2", "--personality", "mix"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "8 played" not in out and "16 played" in out  # 4 scenarios x 2 seeds x 2 conditions
    assert "  hidden       " in out and "  revealed     " in out
