"""`ptom-lab generate` and `ptom-lab trajectories`: files, store sessions, determinism and bad lines."""

from __future__ import annotations

import json

from engine.cli import main
from engine.game.generator import HELDOUT_PATH
from engine.game.scenario import DEFAULT_DIR
from engine.pipeline.trajectories import GenerationPlan, generate_trajectories, read_trajectories
from engine.store import Store


def _lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_generate_writes_valid_deterministic_trajectories(tmp_path, capsys):
    out, db = tmp_path / "t.jsonl", str(tmp_path / "s.db")
    args = ["generate", "--n", "12", "--seed", "3", "--out", str(out), "--db", db, "--noise", "0.3", "--workers", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "12 conversations" in printed and "successes" in printed and "failures" in printed
    first = out.read_text()
    assert len(list(read_trajectories(out))) == 12
    rows = Store(db).list_sessions(kind="generate", limit=100)
    assert len(rows) == 12 and len({r["run_id"] for r in rows}) == 1
    assert all(r["n_turns"] >= 1 and r["success"] is not None for r in rows)
    assert main(args) == 0  # same seed, same conversations, same ids: the store copy is replaced, not duplicated
    assert out.read_text() == first
    assert Store(db).count_sessions(kind="generate") == 12


def test_repeats_share_scenario_and_target_and_mix_specs(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    code = main(["generate", "--n", "9", "--repeats", "3", "--seed", "2", "--out", str(out), "--no-store",
                 "--mix", "planner@2", "planner:weak@1", "--workers", "1"])
    assert code == 0
    lines = _lines(out)
    groups: dict[str, list[dict]] = {}
    for t in lines:
        groups.setdefault(t["id"].rsplit("-", 1)[0], []).append(t)
    assert len(groups) == 3
    for trio in groups.values():
        assert len({json.dumps(t["scenario"], sort_keys=True) for t in trio}) == 1
        assert len({(t["target"]["seed"], t["target"]["personality"]) for t in trio}) == 1
    names = {t["persuader"]["name"] for t in lines}  # repeats add noise (not to the weak preset) and a salt
    assert names <= {"planner", "planner?noise=0.3&salt=1", "planner?noise=0.3&salt=2", "planner:weak",
                     "planner:weak?salt=1", "planner:weak?salt=2"}
    assert main(["generate", "--n", "2", "--out", str(out), "--no-store", "--mix", "planner@-1"]) == 2
    assert "SPEC@WEIGHT" in capsys.readouterr().err
    heldout = ["generate", "--n", "2", "--out", str(out), "--no-store", "--scenarios", str(HELDOUT_PATH)]
    assert main(heldout) == 2  # evaluation scenarios never become training data by accident
    assert "held-out" in capsys.readouterr().err
    assert main(["generate", "--n", "3", "--out", str(out), "--no-store", "--scenarios", str(DEFAULT_DIR / "dinner_party.yaml"),
                 "--workers", "1"]) == 0
    assert {t["scenario"]["id"] for t in _lines(out)} == {"dinner_party"}


def test_workers_do_not_change_the_result():
    plan = GenerationPlan(n=16, seed=4, personality="mix")
    one = [e.to_trajectory(timing=False) for e in generate_trajectories(plan, workers=1)]
    two = [e.to_trajectory(timing=False) for e in generate_trajectories(plan, workers=2)]
    assert one == two


def test_trajectories_validate_stats_import(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    assert main(["generate", "--n", "4", "--seed", "5", "--out", str(good), "--no-store", "--workers", "1"]) == 0
    bad = tmp_path / "bad.jsonl"
    rows = good.read_text().splitlines()
    broken = json.loads(rows[1])
    broken["turns"][0]["moves"] = ["disclose Q.nothing"]
    bad.write_text("\n".join([rows[0], json.dumps(broken), "{oops", *rows[2:]]) + "\n")
    capsys.readouterr()
    assert main(["trajectories", "validate", str(good)]) == 0
    assert main(["trajectories", "validate", str(bad)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert f"{bad}:2" in out and "turns[0].moves[0]" in out and f"{bad}:3" in out
    db = str(tmp_path / "s.db")
    assert main(["trajectories", "import", str(bad), "--db", db]) == 2  # refused whole
    assert Store(db).count_sessions(kind="import") == 0
    assert main(["trajectories", "import", str(bad), "--db", db, "--skip-bad"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "imported 3" in out and "2 bad line(s) skipped" in out
    store = Store(db)
    assert store.count_sessions(kind="import") == 3
    sid = store.list_sessions(kind="import")[0]["id"]
    assert store.turns(sid)
    assert main(["trajectories", "stats", str(good)]) == 0
    assert "4 conversations, 4 successes" in " ".join(capsys.readouterr().err.split())  # rows on stdout


def test_generate_without_an_api_key_leaves_out_as_it_was(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    keep = tmp_path / "keep.jsonl"
    keep.write_text("my earlier conversations\n")
    args = ["generate", "--n", "3", "--human-agent", "anthropic:claude-sonnet-4-6", "--out", str(keep),
            "--db", str(tmp_path / "s.db")]
    assert main(args) == 2
    assert "needs an API key: set the environment variable ANTHROPIC_API_KEY" in capsys.readouterr().err
    assert keep.read_text() == "my earlier conversations\n"
    assert not list(tmp_path.glob(".keep.jsonl*"))  # no temporary file left


def test_generate_on_a_read_only_store_leaves_out_as_it_was():
    """Read-only for real: as root (CI) the command runs as `nobody` through setpriv, for whom the chmod holds
    (in a folder of /tmp, since pytest's own temporary folders are private to root)."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import pytest

    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    if as_nobody and not shutil.which("setpriv"):
        pytest.skip("root without setpriv: a chmod does not stop root from writing")
    with tempfile.TemporaryDirectory() as folder:
        db, keep = Path(folder) / "s.db", Path(folder) / "keep.jsonl"
        Store(db).close()
        keep.write_text("my earlier conversations\n")
        Path(folder).chmod(0o777)
        keep.chmod(0o666)
        db.chmod(0o444)
        command = [*as_nobody, sys.executable, "-m", "engine", "generate", "--n", "2", "--workers", "1",
                   "--out", str(keep), "--db", str(db)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=folder)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().startswith(f"error: the store {db} is read-only"), result.stderr
        assert keep.read_text() == "my earlier conversations\n"


def test_trajectories_refuse_repeated_ids_and_bytes_that_are_not_utf8(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    assert main(["generate", "--n", "3", "--seed", "6", "--out", str(good), "--no-store", "--workers", "1"]) == 0
    rows = good.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes("\n".join([rows[0], rows[1], rows[0], rows[2].replace("a", "\udcff", 1)]).encode(
        "utf-8", "surrogateescape") + b"\n")
    capsys.readouterr()
    assert main(["trajectories", "validate", str(bad)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    first_id = json.loads(rows[0])["id"]
    assert f"{bad}:3: id: '{first_id}' repeats the conversation on line 1" in out
    assert f"{bad}:4: not UTF-8 (byte 0xff" in out
    db = str(tmp_path / "s.db")
    assert main(["trajectories", "import", str(bad), "--db", db, "--skip-bad"]) == 0
    assert Store(db).count_sessions(kind="import") == 2


def test_import_commits_in_batches_and_loses_nothing(tmp_path, capsys, monkeypatch):
    import engine.cli.trajectories as trajectories_cli

    monkeypatch.setattr(trajectories_cli, "IMPORT_BATCH", 2)
    data = tmp_path / "five.jsonl"
    assert main(["generate", "--n", "5", "--seed", "8", "--out", str(data), "--no-store", "--workers", "1"]) == 0
    db = str(tmp_path / "s.db")
    assert main(["trajectories", "import", str(data), "--db", db]) == 0
    assert main(["trajectories", "import", str(data), "--db", db]) == 0  # again: nothing added twice
    assert "5 conversation(s) already in the store" in capsys.readouterr().out
    assert Store(db).count_sessions(kind="import") == 5
