"""`ptom-lab generate` and `ptom-lab trajectories`: files, store sessions, determinism and bad lines."""

from __future__ import annotations

import json

from engine.cli import main
from engine.generator import HELDOUT_PATH
from engine.scenario import DEFAULT_DIR
from engine.store import Store
from engine.trajectories import GenerationPlan, generate_trajectories, read_trajectories


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
    assert {t["persuader"]["name"].split(",")[0] for t in lines} <= {"planner", "planner:salt=1", "planner:salt=2",
                                                                      "planner:noise=0.3", "planner:weak"}
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
    one = [e.to_trajectory() for e in generate_trajectories(plan, workers=1)]
    two = [e.to_trajectory() for e in generate_trajectories(plan, workers=2)]
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
    assert "4 conversations, 4 successes" in " ".join(capsys.readouterr().out.split())
