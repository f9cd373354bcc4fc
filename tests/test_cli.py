"""The headless CLI as a user runs it: readable output, stored games, one-line errors and no half-done writes."""

from __future__ import annotations

import json
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
