"""The store: migrations, WAL, sessions and turns committed as they end, search, and a concurrent reader."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from engine.episode import play
from engine.game import Persuader, PersuaderTurn
from engine.moves import Move
from engine.persuaders.baselines import RevealAll
from engine.store import MIGRATIONS, Store, StoreListener, session_trajectory
from engine.targets.rational import RationalTarget


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
