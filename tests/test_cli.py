"""The headless CLI as a user runs it: readable output, stored games, one-line errors and no half-done writes."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.store import Store


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=120)


def test_play_prints_a_transcript_and_stores_the_game(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    code = main(["play", "--db", db, "--scenario", "business_vacation", "--persuader", "reveal-all",
                 "--human-agent", "rational", "--personality", "stubborn", "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "The team off-site" in out and "Lisbon costs less" in out and "Outcome: SUCCESS" in out
    sid = Store(db).list_sessions()[0]["id"]
    assert main(["sessions", "show", "--db", db, sid]) == 0
    shown = capsys.readouterr().out
    assert "Turn 3" in shown and "stubborn" in shown
    assert main(["sessions", "export", "--db", db, sid, "--format", "jsonl"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["outcome"]["success"] is True and len(line["turns"]) == 3
    assert main(["sessions", "list", "--db", db, "--outcome", "success"]) == 0
    assert sid in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["play", "--scenario", "nope"], "error: unknown scenario 'nope'"),
        (["play", "--persuader", "wizard"], "error: unknown persuader 'wizard'"),
        (["play", "--human-agent", "robot"], "error: unknown human agent 'robot'"),
        (["play", "--personality", "grumpy"], "error: unknown personality 'grumpy'"),
        (["sessions", "show", "zzz"], "error: no session 'zzz'"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path, args, message):
    db = tmp_path / "s.db"
    result = run(*args, "--db", str(db))
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    if db.exists():
        assert Store(db).count_sessions() == 0


def test_scenarios_commands(tmp_path, capsys):
    out_file = tmp_path / "gen.jsonl"
    assert main(["scenarios", "generate", "--n", "40", "--seed", "7", "--out", str(out_file)]) == 0
    assert len(out_file.read_text().splitlines()) == 40
    assert main(["scenarios", "validate", str(out_file)]) == 0
    assert "40 scenario(s)" in capsys.readouterr().out
    assert main(["scenarios", "show", "business_vacation"]) == 0
    assert "Winning disclosures" in capsys.readouterr().out
    assert main(["scenarios", "list"]) == 0
    assert "dinner_party" in capsys.readouterr().out


def test_validate_names_the_bad_line(tmp_path):
    bad = tmp_path / "test_scenarios.jsonl"
    good = json.loads(Path("scenarios/heldout.jsonl").read_text().splitlines()[0])
    broken = dict(good, goal="Z")
    bad.write_text(json.dumps(good) + "\n" + json.dumps(broken) + "\n")
    result = run("scenarios", "validate", str(bad))
    assert result.returncode == 2 and f"{bad}:2" in result.stderr and "goal 'Z'" in result.stderr


def test_db_is_honoured_before_or_after_the_command(tmp_path):
    before, after = tmp_path / "before.db", tmp_path / "after.db"
    assert main(["--db", str(before), "play", "--persuader", "reveal-all", "--quiet"]) == 0
    assert main(["play", "--persuader", "reveal-all", "--quiet", "--db", str(after)]) == 0
    assert Store(before).count_sessions() == 1 and Store(after).count_sessions() == 1


def test_a_db_that_is_not_sqlite_is_one_clear_line(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 200)
    result = run("sessions", "list", "--db", str(notes))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: {notes} is not a lab store (file is not a database): pass --db with a "
                                     "PToM Lab database, or a new file name")


@pytest.mark.parametrize(
    "args, message",
    [
        (["play", "--max-turns", "-3"], "argument --max-turns: must be at least 1, got -3"),
        (["evaluate", "--model", "planner", "--concurrency", "0"], "argument --concurrency: must be at least 1, got 0"),
        (["generate", "--workers", "-1"], "argument --workers: must be at least 1, got -1"),
        (["generate", "--n", "ten"], "argument --n: 'ten' is not a whole number"),
    ],
)
def test_counts_below_one_are_refused_by_name(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--db", str(tmp_path / "s.db")])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()


def test_play_quiet_says_why_a_game_errored(tmp_path, capsys, monkeypatch):
    from tests.fake_api import FakeAPI, point_sdks_at

    with FakeAPI() as api:
        point_sdks_at(api, monkeypatch)
        api.fail_with([400])  # not retried: the persuader's first call fails
        code = main(["play", "--db", str(tmp_path / "s.db"), "--persuader", "openai:gpt-4o-mini", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("game errored: OpenAI request for gpt-4o-mini failed: HTTP 400"), captured.err


def test_a_piped_list_prints_whole_values_in_tab_separated_columns():
    result = subprocess.run(f"{shlex.quote(sys.executable)} -m engine scenarios list | grep business_vacation",
                            shell=True, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr  # before, rich cut the id to `business_vac…` at 80 columns
    assert result.stdout.startswith("business_vacation\tThe team off-site\tbusiness_trip\tA B C\t")


def test_every_list_command_takes_json(tmp_path, capsys):
    from engine.pipeline.training import runs

    db = str(tmp_path / "s.db")
    assert main(["play", "--db", db, "--persuader", "reveal-all", "--quiet"]) == 0
    assert main(["evaluate", "--db", db, "--model", "random", "--num-eval", "2", "--max-turns", "2", "--name", "r"]) == 0
    runs.start_run(Store(db), {}, backend="local", method="sft", base_model="embedded", data_path="train.jsonl",
                   output_dir="models/demo", name="demo")
    sid = Store(db).list_sessions(kind="play")[0]["id"]
    trajectory = tmp_path / "t.jsonl"
    assert main(["sessions", "export", "--db", db, sid, "--format", "jsonl", "--out", str(trajectory)]) == 0
    capsys.readouterr()
    commands = {
        ("scenarios", "list"): ("id", "business_vacation"),
        ("sessions", "list", "--db", db): ("id", sid),
        ("runs", "list", "--db", db): ("status", "running"),
        ("play", "--list"): ("name", "gpt-4o-mini"),
        ("trajectories", "stats", str(trajectory)): ("value", "reveal-all"),
        ("compare", "r", "--db", db, "--out", str(tmp_path / "lb")): ("agent", "random"),
    }
    for argv, (key, value) in commands.items():
        assert main([*argv, "--json"]) == 0, argv
        rows = json.loads(capsys.readouterr().out)  # the notes went to stderr: stdout is the JSON alone
        assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows), argv
        assert value in [r[key] for r in rows], argv


def test_a_terminal_still_gets_the_table(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["scenarios", "list"]) == 0
    out = capsys.readouterr().out
    assert "┃" in out and "\t" not in out  # rich's box, not tab-separated rows
