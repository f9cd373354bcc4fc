"""The store: migrations, WAL, sessions and turns committed as they end, search, and a concurrent reader."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from engine.game.episode import play
from engine.game.interfaces import Persuader, PersuaderTurn
from engine.game.moves import Move
from engine.players.persuaders.baselines import RevealAll
from engine.players.targets.rational import RationalTarget
from engine.store import MIGRATIONS, Store, StoreListener, session_trajectory


def test_migrations_apply_once_and_wal_is_on(tmp_path):
    path = tmp_path / "s.db"
    first = Store(path)
    assert first.migrate() == []  # already applied on open
    names = [r["name"] for r in first.db.query("SELECT name FROM migrations ORDER BY name")]
    assert names == [n for n, _ in MIGRATIONS]
    assert first.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    fks = {fk.other_table for fk in first.db["turns"].foreign_keys}
    assert fks == {"sessions"}
    first.close()
    assert Store(path).migrate() == []


def test_a_game_is_stored_turn_by_turn_and_reads_back(store, business):
    ep = play(business, RevealAll(), RationalTarget(), seed=3, listeners=[StoreListener(store)])
    row = store.get_session(ep.id[:6])
    assert row["status"] == "finished" and row["success"] == 1 and row["n_turns"] == 3
    assert row["created_at"].endswith("+00:00")
    traj = session_trajectory(store, ep.id)
    expected = ep.to_trajectory()
    assert traj["turns"] == expected["turns"]
    assert traj["outcome"] == expected["outcome"]
    assert traj["scenario"] == expected["scenario"]


def test_filters_and_full_text_search(store, library):
    for sid, seed in (("business_vacation", 1), ("family_holiday", 2)):
        play(library.get(sid), RevealAll(), RationalTarget(), seed=seed, listeners=[StoreListener(store)])
    assert store.count_sessions() == 2
    assert [r["scenario_id"] for r in store.list_sessions(scenario="family_holiday")] == ["family_holiday"]
    found = store.list_sessions(search="Lisbon")
    assert [r["scenario_id"] for r in found] == ["business_vacation"]
    assert store.list_sessions(search='"unbalanced') == []  # user input never breaks FTS syntax
    store.archive(found[0]["id"])
    assert store.count_sessions() == 1 and store.count_sessions(archived=True) == 1


def test_the_agent_filter_finds_a_name_or_every_spec_of_a_kind(store, business):
    for name in ("local:models/x?dtype=bfloat16", "local?temperature=0", "localhost-bot", "planner"):
        persuader = RevealAll()
        persuader.name = name
        play(business, persuader, RationalTarget(), seed=1, listeners=[StoreListener(store)])
    assert sorted(r["persuader"] for r in store.list_sessions(agent="local")) == [
        "local:models/x?dtype=bfloat16", "local?temperature=0"]
    assert store.count_sessions(agent="local?temperature=0") == 1 and store.count_sessions(agent="planner") == 1
    assert store.count_sessions(agent="rational") == 4 and store.count_sessions(agent="loc") == 0


def test_interrupted_game_keeps_finished_turns(store, business):
    class Interrupts(Persuader):
        name = "interrupts"

        def act(self, view):
            if view.turn == 3:
                raise KeyboardInterrupt
            return PersuaderTurn("hello", [Move("appeal")])

    with pytest.raises(KeyboardInterrupt):
        play(business, Interrupts(), RationalTarget(), listeners=[StoreListener(store)])
    row = store.list_sessions()[0]
    assert row["status"] == "interrupted" and row["n_turns"] == 2
    assert len(store.turns(row["id"])) == 2


def test_second_process_reads_while_a_game_writes(tmp_path, business):
    """A reader in another process sees each committed turn while the writer holds the game open."""
    path = tmp_path / "s.db"
    store = Store(path)
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, json
            from engine.store import Store
            s = Store({str(path)!r})
            for line in sys.stdin:
                print(json.dumps([r["idx"] for r in s.db.query("SELECT idx FROM turns ORDER BY idx")]), flush=True)
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    seen = []

    class Probe:
        def on_start(self, ep):
            pass

        def on_turn(self, ep, turn):
            reader.stdin.write("?\n")
            reader.stdin.flush()
            seen.append(json.loads(reader.stdout.readline()))

        def on_end(self, ep):
            pass

    play(business, RevealAll(), RationalTarget(), listeners=[StoreListener(store), Probe()])
    reader.stdin.close()
    reader.wait(timeout=30)
    assert seen == [[1], [1, 2], [1, 2, 3]]


def test_migration_003_declares_foreign_keys_and_keeps_rows(tmp_path, business, monkeypatch):
    import engine.store

    path = tmp_path / "old.db"
    # a store made before the foreign keys (with the later columns, so that today's code can write its rows)
    monkeypatch.setattr(engine.store, "MIGRATIONS", [m for m in MIGRATIONS if m[0] != "003_foreign_keys"])
    old = Store(path)
    old.db["eval_runs"].insert({"id": "ev1", "name": "ev", "status": "finished", "created_at": "2026-01-01"})
    played = {}
    for run_id, kind in (("ev1", "evaluate"), ("generate-3-abcd", "generate"), (None, "play")):
        ep = play(business, RevealAll(), RationalTarget(), kind=kind, meta={"run_id": run_id} if run_id else {},
                  listeners=[StoreListener(old)])
        played[kind] = ep.id
    old.db["training_runs"].insert({"id": "tr1", "name": "t", "status": "finished", "created_at": "2026-01-01"})
    old.db["training_steps"].insert({"run_id": "tr1", "step": 1, "loss": 2.0})
    old.db["models"].insert_all([{"id": "m1", "run_id": "tr1", "created_at": "2026-01-02"},
                                 {"id": "m2", "run_id": "gone", "created_at": "2026-01-03"}])
    old.close()
    monkeypatch.undo()

    store = Store(path)
    fks = {(t, fk[3], fk[2]) for t in ("sessions", "turns", "models", "training_steps")
           for fk in store.conn.execute(f"PRAGMA foreign_key_list({t})")}
    assert fks == {("sessions", "run_id", "eval_runs"), ("turns", "session_id", "sessions"),
                   ("models", "run_id", "training_runs"), ("training_steps", "run_id", "training_runs")}
    assert store.count_sessions() == 3 and len(store.turns(played["generate"])) == 3
    assert [r["kind"] for r in store.run_sessions("generate-3-abcd")] == ["generate"]
    assert store.find_eval_run("generate-3-abcd")["kind"] == "generate"  # the batch got its row
    assert [r["name"] for r in store.eval_runs()] == ["ev"]  # only evaluations are listed as evaluation runs
    assert store.find_training_runs("gone")[0]["status"] == "missing"
    assert [s["loss"] for s in store.training_steps("tr1")] == [2.0]
    assert {r["id"] for r in store.list_sessions(search="Lisbon")} == set(played.values())  # FTS still finds turns
    indexes = {r[1] for r in store.conn.execute("PRAGMA index_list(sessions)")}
    assert "idx_sessions_run_id" in indexes and "idx_sessions_created_at" in indexes
    assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_a_session_must_point_at_a_run_that_exists(store, business):
    import sqlite3

    with pytest.raises(sqlite3.IntegrityError):
        play(business, RevealAll(), RationalTarget(), meta={"run_id": "nowhere"}, listeners=[StoreListener(store)])
    store.ensure_run("generate-1", "generate")
    store.ensure_run("generate-1", "generate")  # the first session of a batch makes the row, the rest find it
    ep = play(business, RevealAll(), RationalTarget(), meta={"run_id": "generate-1"}, listeners=[StoreListener(store)])
    assert [r["id"] for r in store.run_sessions("generate-1")] == [ep.id]
    store.delete_session(ep.id)
    assert store.run_sessions("generate-1") == [] and store.turns(ep.id) == []


def test_reads_and_run_writes_never_import_sqlite_utils(tmp_path):
    """sqlite-utils imports pandas and numpy (~0.8 s): only a pending migration or `Store.db` may load it."""
    path = tmp_path / "s.db"
    Store(path).close()  # migrated here
    code = textwrap.dedent(f"""
        import sys
        from engine.store import Store
        s = Store({str(path)!r})
        s.list_sessions(search="x"); s.count_sessions(); s.eval_runs(); s.training_runs()
        s.add_training_run({{"id": "r", "name": "r", "status": "running"}})
        s.add_training_step("r", {{"step": 1, "loss": 1.0}})
        s.update_training_run("r", status="finished")
        print(sorted(m for m in ("sqlite_utils", "pandas", "numpy") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_file_that_is_not_sqlite_is_one_clear_error(tmp_path):
    from engine.errors import LabError

    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(LabError, match=r"notes\.db is not a lab store \(file is not a database\)"):
        Store(path)


def test_a_read_only_store_fails_at_the_check_and_at_any_write(store, business):
    from engine.errors import LabError

    store.conn.execute("PRAGMA query_only = ON")  # SQLite's own read-only mode: writes fail as on a read-only file
    with pytest.raises(LabError, match=r"sessions\.db is read-only \(attempt to write a readonly database\)"):
        store.check_writable()
    with pytest.raises(LabError, match="is read-only"):
        play(business, RevealAll(), RationalTarget(), listeners=[StoreListener(store)])
    assert store.count_sessions() == 0


def test_a_busy_store_is_waited_for_with_one_notice(tmp_path, monkeypatch, capsys):
    import sqlite3
    import threading

    import engine.store as store_module

    monkeypatch.setattr(store_module, "BUSY_NOTICE_S", 0.2)
    path = tmp_path / "s.db"
    store = Store(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # another process's writer
    other.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(1.0, lambda: other.execute("COMMIT"))
    releaser.start()
    with store.transaction():
        store.conn.execute("UPDATE migrations SET applied_at = applied_at")
    releaser.join()
    err = capsys.readouterr().err
    assert err.count("notice: the store") == 1 and "is busy with another process's write; waiting" in err


def test_a_store_held_past_the_limit_is_one_clear_error(tmp_path, monkeypatch):
    import sqlite3

    import engine.store as store_module
    from engine.errors import LabError

    monkeypatch.setattr(store_module, "BUSY_NOTICE_S", 0.1)
    monkeypatch.setattr(store_module, "BUSY_GIVE_UP_S", 0.3)
    path = tmp_path / "s.db"
    store = Store(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(LabError, match=r"stayed busy \(database is locked\)"), store.transaction():
        pass
    other.execute("ROLLBACK")
    with store.transaction():  # the lock was released: the store works again
        pass
