"""The one store: a SQLite file (`sessions.db`) in WAL mode, migrated on open, and the only module that speaks SQL.

Every game is a *session* with its *turns*; a turn is committed the moment it ends, so a crash loses at most
the turn in progress. Evaluation runs, training runs and their steps, models and datasets live here too, each
child table with a declared foreign key to its parent, so Datasette links them. A schema change is a new function
appended to `MIGRATIONS`, never an edit of an applied one. The file opens in Datasette as it is. API keys never
enter it: nothing here stores an environment.

Reads and writes use the plain `sqlite3` module; sqlite-utils (which imports pandas and numpy when they are
installed, ~0.8 s) is imported only to run a pending migration or when `Store.db` is asked for (tests, tools).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import LabError

if TYPE_CHECKING:  # imported where used: with pandas and numpy (trl brings them) it costs ~0.8 s of every start
    import sqlite_utils

    from engine.game.record import Episode, Turn

DEFAULT_DB = "sessions.db"


def default_db_path() -> str:
    return os.environ.get("PTOM_DB") or DEFAULT_DB


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


# ----- migrations: append only; each runs once, in order, inside a transaction -----------------------
def _m001_sessions(db: sqlite_utils.Database) -> None:
    db["sessions"].create(
        {
            "id": str,
            "kind": str,  # play | arena | evaluate | generate | import
            "status": str,  # running | finished | interrupted | errored
            "scenario_id": str,
            "scenario_json": str,
            "persuader": str,
            "target": str,
            "personality": str,
            "condition": str,
            "seed": int,
            "choice": str,
            "success": int,
            "n_turns": int,
            "violations": int,
            "mental_state_appeals": int,
            "parse_failures": int,
            "final_words": str,
            "error": str,
            "meta_json": str,
            "archived": int,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        defaults={"archived": 0, "n_turns": 0},
    )
    db["turns"].create(
        {
            "id": int,
            "session_id": str,
            "idx": int,
            "message": str,
            "target_reply": str,
            "moves_json": str,
            "refused_json": str,
            "statements_json": str,
            "reasoning": str,
            "belief_json": str,
            "counterfactual_json": str,
            "target_state_json": str,
            "raw": str,
            "parse_ok": int,
            "parse_error": str,
            "usage_json": str,
            "target_usage_json": str,
            "latency_ms": float,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("session_id", "sessions", "id")],
    )
    db["turns"].create_index(["session_id", "idx"], unique=True)
    for cols in (["created_at"], ["kind", "created_at"], ["scenario_id"], ["persuader"], ["success"], ["status"]):
        db["sessions"].create_index(cols)
    db["turns"].enable_fts(["message", "target_reply"], create_triggers=True)


def _m002_research_loop(db: sqlite_utils.Database) -> None:
    """Datasets made, training runs and their steps, evaluation runs, and registered models."""
    db["sessions"].add_column("run_id", str)  # the evaluation or generation run a session belongs to
    db["sessions"].create_index(["run_id"])
    db["datasets"].create(
        {
            "id": str, "path": str, "format": str, "source": str, "split": str, "n_conversations": int,
            "n_examples": int, "n_tokens": int, "sha256": str, "summary_json": str, "created_at": str,
        },
        pk="id",
    )
    db["training_runs"].create(
        {
            "id": str, "name": str, "backend": str, "method": str, "base_model": str, "data_path": str,
            "output_dir": str, "status": str, "config_json": str, "metrics_json": str, "checkpoint": str,
            "total_steps": int, "error": str, "pid": int, "created_at": str, "updated_at": str,
        },
        pk="id",
    )
    db["training_steps"].create(
        {
            "id": int, "run_id": str, "step": int, "epoch": float, "loss": float, "learning_rate": float,
            "grad_norm": float, "tokens_per_s": float, "eta_s": float, "logs_json": str, "created_at": str,
        },
        pk="id",
        foreign_keys=[("run_id", "training_runs", "id")],
    )
    db["training_steps"].create_index(["run_id", "step"])
    db["eval_runs"].create(
        {
            "id": str, "name": str, "persuader": str, "target": str, "config_json": str, "status": str,
            "results_json": str, "n_planned": int, "created_at": str, "updated_at": str,
        },
        pk="id",
    )
    db["eval_runs"].create_index(["name"], unique=True)
    db["models"].create(
        {
            "id": str, "name": str, "kind": str, "base_model": str, "path": str, "run_id": str,
            "data_path": str, "config_json": str, "metrics_json": str, "created_at": str,
        },
        pk="id",
    )


def _m003_foreign_keys(db: sqlite_utils.Database) -> None:
    """Declare the parents Datasette links by: sessions.run_id -> eval_runs, models.run_id -> training_runs.

    A session's run is an evaluation, a generation batch or an import; batches and imports had no row of their
    own, so `eval_runs` gains a `kind` and each of them gets a row made from its sessions. A model whose training
    run is gone gets a placeholder run (status `missing`), so every id a row held is still there.
    """
    db["eval_runs"].add_column("kind", str, not_null_default="evaluate")  # evaluate | generate | import
    db.execute(
        "INSERT INTO eval_runs (id, name, kind, n_planned, created_at, updated_at) "
        "SELECT run_id, run_id, min(kind), count(*), min(created_at), max(updated_at) FROM sessions "
        "WHERE run_id IS NOT NULL AND run_id NOT IN (SELECT id FROM eval_runs) GROUP BY run_id"
    )
    db.execute(
        "INSERT INTO training_runs (id, name, status, created_at, updated_at) "
        "SELECT run_id, run_id, 'missing', min(created_at), max(created_at) FROM models "
        "WHERE run_id IS NOT NULL AND run_id NOT IN (SELECT id FROM training_runs) GROUP BY run_id"
    )
    db["sessions"].transform(add_foreign_keys=[("run_id", "eval_runs", "id")])
    db["models"].transform(add_foreign_keys=[("run_id", "training_runs", "id")])
    db["models"].create_index(["run_id"])


def _m004_session_rules(db: sqlite_utils.Database) -> None:
    """The rule set a game was played under, a field of the record: before, a MindGames game kept it in
    `meta_json` only (a lab game kept nothing), so an export lost it. Moved out of the meta, not copied."""
    db["sessions"].add_column("rules", str, not_null_default="lab")  # lab | mindgames
    db.execute(
        "UPDATE sessions SET rules = json_extract(meta_json, '$.rules'), meta_json = json_remove(meta_json, '$.rules') "
        "WHERE json_valid(meta_json) AND json_extract(meta_json, '$.rules') IS NOT NULL"
    )


def _m005_improve_runs(db: sqlite_utils.Database) -> None:
    """`ptom-lab improve`: a run of rounds, each of which plays the current adapter, builds data from its games,
    trains the next adapter and evaluates it. A round row links the evaluation run of its games (`play_run_id`),
    its training run and its validation run, so every number on the success-by-round curve leads to its sessions."""
    db["improve_runs"].create(
        {
            "id": str, "name": str, "out_dir": str, "status": str, "config_json": str, "start_model": str,
            "rounds": int, "error": str, "pid": int, "created_at": str, "updated_at": str,
        },
        pk="id",
    )
    db["improve_runs"].create_index(["out_dir"])
    db["improve_rounds"].create(
        {
            "id": int, "improve_id": str, "round": int, "status": str, "play_run_id": str, "games": int, "wins": int,
            "data_path": str, "ei_rows": int, "dagger_rows": int, "train_run_id": str, "adapter": str,
            "eval_run_id": str, "val_successes": int, "val_n": int, "created_at": str, "updated_at": str,
        },
        pk="id",
        foreign_keys=[("improve_id", "improve_runs", "id"), ("play_run_id", "eval_runs", "id"),
                      ("train_run_id", "training_runs", "id"), ("eval_run_id", "eval_runs", "id")],
    )
    db["improve_rounds"].create_index(["improve_id", "round"], unique=True)


def _m006_eval_notes(db: sqlite_utils.Database) -> None:
    """A run's warnings from before its first game (an adapter asked for a reply format or prompt layout it was not
    trained on), kept with the run: a run started from the TUI printed them only to a log nobody sees."""
    db["eval_runs"].add_column("notes", str)


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("001_sessions_and_turns", _m001_sessions),
    ("002_research_loop", _m002_research_loop),
    ("003_foreign_keys", _m003_foreign_keys),
    ("004_session_rules", _m004_session_rules),
    ("005_improve_runs", _m005_improve_runs),
    ("006_eval_notes", _m006_eval_notes),
]


class Store:
    """A connection to the lab's database. One per thread: sqlite3 connections are not shared."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = str(path or default_db_path())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise LabError(f"cannot open the database {self.path}: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA recursive_triggers = ON")  # as sqlite-utils sets it: REPLACE fires FTS delete triggers
            self.conn = conn
            self._db: sqlite_utils.Database | None = None
            self.lock = threading.RLock()
            self.migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise store_error(self.path, exc) from None

    # ----- schema -----------------------------------------------------------------------------------
    @property
    def db(self) -> sqlite_utils.Database:
        """This connection through sqlite-utils, for migrations and for tests or tools that read tables directly.

        Made on first use, so a command that only reads and writes through the methods below never imports it."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def migrate(self) -> list[str]:
        """Apply the pending migrations, each in its own transaction; the names applied, in order.

        Foreign keys are off while a migration runs (SQLite's own recipe for rebuilding a table that others point
        to; the pragma is a no-op inside a transaction, hence here) and checked before it commits."""
        applied: list[str] = []
        with self.lock:
            self.conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
            done = {row[0] for row in self.conn.execute("SELECT name FROM migrations").fetchall()}
            for name, fn in MIGRATIONS:
                if name in done:
                    continue
                self.conn.execute("PRAGMA foreign_keys = OFF")
                try:
                    with self.transaction():
                        if self.conn.execute("SELECT 1 FROM migrations WHERE name = ?", [name]).fetchone():
                            continue  # another process applied it while this one waited for the write lock
                        fn(self.db)
                        broken = self.conn.execute("PRAGMA foreign_key_check").fetchone()
                        if broken:
                            raise LabError(f"{self.path}: migration {name} left a row of {broken[0]} without its "
                                           f"{broken[2]} row; the store is unchanged")
                        self.conn.execute("INSERT INTO migrations VALUES (?, ?)", [name, now()])
                finally:
                    self.conn.execute("PRAGMA foreign_keys = ON")
                applied.append(name)
        return applied

    def transaction(self):
        """BEGIN IMMEDIATE ... COMMIT: a writer takes the lock up front, so readers never see half a write.

        A store busy with another process's write is waited for (with one notice on stderr), and a read-only
        or broken store raises a LabError naming the file, never a raw sqlite3 traceback."""
        return _Transaction(self.conn, self.lock, self.path)

    def check_writable(self) -> None:
        """Raise a LabError now if this store cannot be written, so a command fails before its first game.

        SQLite reports a read-only file only at the first write, so this takes the write lock and runs a
        write that touches no row, then rolls back."""
        with self.lock:
            if self.conn.in_transaction:
                return
            _begin(self.conn, self.path)
            try:
                self.conn.execute("DELETE FROM migrations WHERE 0")
            except sqlite3.DatabaseError as exc:
                raise store_error(self.path, exc) from None
            finally:
                self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    # ----- sessions and turns ------------------------------------------------------------------------
    def start_session(self, episode: Episode) -> None:
        self._insert(
            "sessions",
            {
                "id": episode.id,
                "kind": episode.kind,
                "status": episode.status,
                "scenario_id": episode.scenario.id,
                "scenario_json": dumps(episode.scenario.to_dict()),
                "persuader": episode.persuader.name,
                "target": episode.target.kind,
                "personality": episode.target.personality,
                "condition": episode.condition,
                "rules": episode.rules,
                "seed": episode.target.seed,
                "meta_json": dumps(episode.meta),
                "run_id": episode.meta.get("run_id"),
                "archived": 0,
                "n_turns": 0,
                "created_at": now(),
                "updated_at": now(),
            },
            replace=True,
        )

    def add_turn(self, session_id: str, turn: Turn) -> None:
        """One committed row; the JSON columns hold the record's own dump of each field."""
        data = turn.model_dump(mode="json")
        with self.transaction():
            self._insert(
                "turns",
                {
                    "session_id": session_id,
                    "idx": turn.index,
                    **{f"{key}_json": dumps(data[key]) for key in _TURN_JSON},
                    **{key: data[key] for key in _TURN_COLUMNS},
                    "parse_ok": int(turn.parse_ok),
                    "created_at": now(),
                },
            )
            self._update("sessions", session_id, {"n_turns": turn.index, "updated_at": now()})

    def end_session(self, episode: Episode) -> None:
        o = episode.outcome
        self._update(
            "sessions",
            episode.id,
            {
                "status": episode.status,
                "choice": o.choice if o else None,
                "success": int(o.success) if o else None,
                "violations": o.violations if o else None,
                "mental_state_appeals": o.mental_state_appeals if o else None,
                "parse_failures": o.parse_failures if o else None,
                "final_words": o.final_words if o else None,
                "n_turns": len(episode.turns),
                "error": episode.error or None,
                "meta_json": dumps(episode.meta),
                "updated_at": now(),
            },
        )

    # ----- rows in and out: every statement below goes through these --------------------------------------
    def _rows(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def _insert(self, table: str, row: dict[str, Any], *, replace: bool = False) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        columns = ", ".join(f"[{c}]" for c in row)
        with self.transaction():
            self.conn.execute(f"{verb} INTO [{table}] ({columns}) VALUES ({', '.join('?' * len(row))})",
                              list(row.values()))

    def _update(self, table: str, row_id: str, fields: dict[str, Any]) -> None:
        sets = ", ".join(f"[{c}] = ?" for c in fields)
        with self.transaction():
            self.conn.execute(f"UPDATE [{table}] SET {sets} WHERE id = ?", [*fields.values(), row_id])

    # ----- reading sessions ---------------------------------------------------------------------------
    def get_session(self, session_id: str) -> dict[str, Any]:
        rows = self._rows("SELECT * FROM sessions WHERE id = ?", [session_id])
        if not rows:
            rows = self._rows("SELECT * FROM sessions WHERE id LIKE ? LIMIT 2", [session_id + "%"])
            if len(rows) != 1:
                raise LabError(f"no session '{session_id}' in {self.path}" if not rows else f"'{session_id}' is ambiguous")
        return rows[0]

    def turns(self, session_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM turns WHERE session_id = ? ORDER BY idx", [session_id])

    def list_sessions(
        self,
        *,
        kind: str | None = None,
        scenario: str | None = None,
        agent: str | None = None,
        success: bool | None = None,
        search: str | None = None,
        archived: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Newest first; every filter is indexed or FTS-backed so it stays fast at 100,000 sessions."""
        where, params = self._filters(kind, scenario, agent, success, search, archived)
        sql = f"SELECT * FROM sessions {where} ORDER BY created_at DESC LIMIT ? OFFSET ?"
        return self._rows(sql, [*params, limit, offset])

    def count_sessions(self, **filters: Any) -> int:
        where, params = self._filters(
            filters.get("kind"), filters.get("scenario"), filters.get("agent"), filters.get("success"),
            filters.get("search"), filters.get("archived", False),
        )
        return self.conn.execute(f"SELECT count(*) FROM sessions {where}", params).fetchone()[0]

    @staticmethod
    def _filters(kind, scenario, agent, success, search, archived) -> tuple[str, list[Any]]:
        clauses, params = ["archived = ?"], [int(archived)]
        if kind:
            clauses.append("kind = ?")
            params.append(kind)
        if scenario:
            clauses.append("scenario_id = ?")
            params.append(scenario)
        if agent:  # a name, or a kind that finds every spec of it: `local` finds `local:models/x?dtype=bfloat16`
            n = len(agent) + 1
            clauses.append("(? IN (persuader, target) OR substr(persuader, 1, ?) IN (?, ?) OR substr(target, 1, ?) IN (?, ?))")
            params += [agent, n, agent + ":", agent + "?", n, agent + ":", agent + "?"]
        if success is not None:
            clauses.append("success = ?")
            params.append(int(success))
        if search:
            clauses.append(
                "id IN (SELECT session_id FROM turns WHERE rowid IN "
                "(SELECT rowid FROM turns_fts WHERE turns_fts MATCH ?))"
            )
            params.append(_fts_query(search))
        return "WHERE " + " AND ".join(clauses), params

    def archive(self, session_id: str, archived: bool = True) -> None:
        self._update("sessions", self.get_session(session_id)["id"], {"archived": int(archived)})

    def session_ids(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT id FROM sessions")}

    def delete_session(self, session_id: str) -> None:
        """A session and its turns, gone together: an unfinished attempt replayed, or a copy about to be replaced."""
        with self.transaction():
            self.conn.execute("DELETE FROM turns WHERE session_id = ?", [session_id])
            self.conn.execute("DELETE FROM sessions WHERE id = ?", [session_id])

    # ----- runs of sessions: evaluations, generation batches, imports (`eval_runs`) -------------------
    def add_eval_run(self, row: dict[str, Any]) -> None:
        self._insert("eval_runs", {"kind": "evaluate", "created_at": now(), "updated_at": now(), **row})

    def ensure_run(self, run_id: str, kind: str) -> None:
        """The row a generation batch's or an import's sessions point to, made by the first of them."""
        with self.transaction():
            self.conn.execute(
                "INSERT OR IGNORE INTO eval_runs (id, name, kind, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                [run_id, run_id, kind, now(), now()],
            )

    def update_eval_run(self, run_id: str, **fields: Any) -> None:
        self._update("eval_runs", run_id, {**fields, "updated_at": now()})

    def find_eval_run(self, name: str) -> dict[str, Any] | None:
        """A run by name or id, or None."""
        rows = self._rows("SELECT * FROM eval_runs WHERE name = ? OR id = ?", [name, name])
        return rows[0] if rows else None

    def eval_runs(self, limit: int = 200) -> list[dict[str, Any]]:
        """The newest evaluation runs first, each with `done`: its episodes no longer running (a progress bar)."""
        runs = self._rows(
            "SELECT * FROM eval_runs WHERE kind = 'evaluate' ORDER BY created_at DESC LIMIT ?", [limit]
        )
        done = {r["run_id"]: r["n"] for r in self._rows(
            "SELECT run_id, count(*) AS n FROM sessions WHERE run_id IN (SELECT id FROM eval_runs WHERE status = 'running')"
            " AND status != 'running' GROUP BY run_id")}
        return [{**r, "done": done.get(r["id"], 0)} for r in runs]

    def run_sessions(self, run_id: str) -> list[dict[str, Any]]:
        """A run's sessions, oldest first."""
        return self._rows("SELECT * FROM sessions WHERE run_id = ? ORDER BY created_at", [run_id])

    def finished_episode_keys(self, run_id: str) -> set[str]:
        """The `episode_key`s of a run's finished sessions: what a resumed run skips."""
        rows = self.conn.execute("SELECT meta_json FROM sessions WHERE run_id = ? AND status = 'finished'", [run_id])
        return {json.loads(meta or "{}").get("episode_key") for (meta,) in rows}

    # ----- training runs, their logged steps, and the models they made -------------------------------
    def add_training_run(self, row: dict[str, Any]) -> None:
        self._insert("training_runs", {"created_at": now(), "updated_at": now(), **row})

    def update_training_run(self, run_id: str, **fields: Any) -> None:
        self._update("training_runs", run_id, {**fields, "updated_at": now()})

    def training_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM training_runs ORDER BY created_at DESC LIMIT ?", [limit])

    def find_training_runs(self, key: str) -> list[dict[str, Any]]:
        """The run with id `key`; else the newest run whose output folder is `key`; else those whose id starts
        with it (at most two, enough to tell 'ambiguous')."""
        rows = self._rows("SELECT * FROM training_runs WHERE id = ?", [key])
        if not rows:
            rows = self._rows(
                "SELECT * FROM training_runs WHERE output_dir IN (?, ?) ORDER BY created_at DESC LIMIT 1",
                [str(Path(key)), str(Path(key).resolve())],
            )
        return rows or self._rows("SELECT * FROM training_runs WHERE id LIKE ? LIMIT 2", [key + "%"])

    def add_training_step(self, run_id: str, row: dict[str, Any]) -> None:
        with self.transaction():
            self._insert("training_steps", {**row, "run_id": run_id, "created_at": now()})
            self.conn.execute("UPDATE training_runs SET updated_at = ? WHERE id = ?", [now(), run_id])

    def training_steps(self, run_id: str, after_id: int = 0) -> list[dict[str, Any]]:
        """A run's logged steps in the order they were logged; `after_id` gives only those newer than a poll's last."""
        return self._rows("SELECT * FROM training_steps WHERE run_id = ? AND id > ? ORDER BY id", [run_id, after_id])

    def latest_training_step(self, run_id: str) -> tuple[int, float | None]:
        """The newest logged step and the newest training loss (evaluation rows carry none)."""
        step, loss = self.conn.execute(
            "SELECT MAX(step), (SELECT loss FROM training_steps WHERE run_id = ?1 AND loss IS NOT NULL "
            "ORDER BY id DESC LIMIT 1) FROM training_steps WHERE run_id = ?1", [run_id]
        ).fetchone()
        return step or 0, loss

    def drop_training_steps_after(self, run_id: str, step: int) -> None:
        """Steps after a checkpoint that a resumed run trains again."""
        with self.transaction():
            self.conn.execute("DELETE FROM training_steps WHERE run_id = ? AND step > ?", [run_id, step])

    def add_model(self, row: dict[str, Any]) -> None:
        self._insert("models", {"created_at": now(), **row})

    # ----- datasets ----------------------------------------------------------------------------------
    def put_dataset(self, row: dict[str, Any]) -> None:
        """A dataset file's row, replacing the row of the same id (the same file with the same content)."""
        self._insert("datasets", {"created_at": now(), **row}, replace=True)

    # ----- improve runs (`ptom-lab improve`) and their rounds ----------------------------------------------
    def add_improve_run(self, row: dict[str, Any]) -> None:
        self._insert("improve_runs", {"created_at": now(), "updated_at": now(), **row})

    def update_improve_run(self, run_id: str, **fields: Any) -> None:
        self._update("improve_runs", run_id, {**fields, "updated_at": now()})

    def improve_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM improve_runs ORDER BY created_at DESC LIMIT ?", [limit])

    def find_improve_runs(self, key: str) -> list[dict[str, Any]]:
        """The run with id `key`; else the newest run whose output folder is `key`; else those whose id starts
        with it (at most two, enough to tell 'ambiguous')."""
        rows = self._rows("SELECT * FROM improve_runs WHERE id = ?", [key])
        if not rows:
            rows = self._rows(
                "SELECT * FROM improve_runs WHERE out_dir IN (?, ?) ORDER BY created_at DESC LIMIT 1",
                [str(Path(key)), str(Path(key).resolve())],
            )
        return rows or self._rows("SELECT * FROM improve_runs WHERE id LIKE ? LIMIT 2", [key + "%"])

    def put_improve_round(self, improve_id: str, round_: int, **fields: Any) -> None:
        """Set fields of a round, creating its row on first use: a round is written step by step as it goes."""
        with self.transaction():
            exists = self.conn.execute("SELECT 1 FROM improve_rounds WHERE improve_id = ? AND round = ?",
                                       [improve_id, round_]).fetchone()
            if exists:
                sets = ", ".join(f"[{c}] = ?" for c in [*fields, "updated_at"])
                self.conn.execute(f"UPDATE improve_rounds SET {sets} WHERE improve_id = ? AND round = ?",
                                  [*fields.values(), now(), improve_id, round_])
            else:
                self._insert("improve_rounds", {"improve_id": improve_id, "round": round_, **fields,
                                                "created_at": now(), "updated_at": now()})

    def improve_rounds(self, improve_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM improve_rounds WHERE improve_id = ? ORDER BY round", [improve_id])


def _fts_query(text: str) -> str:
    """Each word as a quoted prefix term, so user input never breaks FTS syntax."""
    words = [w.replace('"', "") for w in text.split() if w.strip('"')]
    return " ".join(f'"{w}"*' for w in words) or '""'


def store_error(path: str, exc: sqlite3.DatabaseError) -> LabError:
    """One line that says what is wrong with the store file and what to do, for the errors a user can fix."""
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc)
    if name == "SQLITE_READONLY" or "readonly" in text:
        return LabError(f"the store {path} is read-only ({text}): make the file and its folder writable, or pass "
                        "--db with another file")
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text or "malformed" in text:
        return LabError(f"{path} is not a lab store ({text}): pass --db with a PToM Lab database, or a new file name")
    if name == "SQLITE_FULL" or "disk is full" in text:
        return LabError(f"the store {path} cannot grow: the disk is full")
    if name == "SQLITE_BUSY" or "locked" in text:
        return LabError(f"the store {path} stayed busy ({text}): another process held its write lock too long")
    return LabError(f"the store {path}: {text}")


BUSY_TIMEOUT_MS = 30_000  # how long a statement outside `transaction()` waits for another writer
BUSY_NOTICE_S = 2.0  # a transaction waits this long quietly, then says why it is waiting
BUSY_GIVE_UP_S = 30 * 60.0  # a writer that holds the store longer than this is stuck, not busy


def _begin(conn: sqlite3.Connection, path: str) -> None:
    """BEGIN IMMEDIATE, waiting for as long as another process writes, with one notice line on stderr.

    SQLite's busy handler already retries with growing sleeps; here it is given `BUSY_NOTICE_S` per attempt
    so that a long wait (a big import in another process) is announced, then retried until `BUSY_GIVE_UP_S`.
    """
    started, noticed = time.monotonic(), False
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_NOTICE_S * 1000)}")
    try:
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorname", "") != "SQLITE_BUSY" and "locked" not in str(exc):
                    raise store_error(path, exc) from None
                if time.monotonic() - started > BUSY_GIVE_UP_S:
                    raise store_error(path, exc) from None
                if not noticed:
                    print(f"notice: the store {path} is busy with another process's write; waiting for it (up to "
                          f"{BUSY_GIVE_UP_S / 60:.0f} min)",
                          file=sys.stderr, flush=True)
                    noticed = True
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


class _Transaction:
    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock, path: str) -> None:
        self.conn, self.lock, self.path, self.outer = conn, lock, path, False

    def __enter__(self) -> None:
        self.lock.acquire()
        self.outer = not self.conn.in_transaction
        if self.outer:
            try:
                _begin(self.conn, self.path)
            except BaseException:
                self.lock.release()
                raise

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.outer and self.conn.in_transaction:  # SQLite may have rolled back already after an error
                self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        except sqlite3.DatabaseError as failed:
            raise store_error(self.path, failed) from None
        finally:
            self.lock.release()
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.IntegrityError):
            raise store_error(self.path, exc) from None


class StoreListener:
    """Subscribes a store to the episode loop: a session row on start, a committed row per turn, the outcome."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_start(self, episode: Episode) -> None:
        self.store.start_session(episode)

    def on_turn(self, episode: Episode, turn: Turn) -> None:
        self.store.add_turn(episode.id, turn)

    def on_end(self, episode: Episode) -> None:
        self.store.end_session(episode)


# the turn fields stored as JSON text (`<field>_json`) and as plain columns of the same name
_TURN_JSON = ("moves", "refused", "statements", "belief", "counterfactual", "target_state", "usage", "target_usage")
_TURN_COLUMNS = ("message", "target_reply", "reasoning", "raw", "parse_error", "latency_ms")


def session_outcome(row: dict[str, Any]) -> str:
    """success / failure for a finished game, else its status (running, interrupted, errored)."""
    return row["status"] if row["success"] is None else ("success" if row["success"] else "failure")


def session_episode(store: Store, session_id: str) -> Episode:
    """A stored session as the record the episode loop built (kind and meta included)."""
    from engine.game.record import (  # pydantic is imported when a session is read, not at start-up
        Episode,
        Outcome,
        Turn,
    )

    row = store.get_session(session_id)

    def load(value: str | None) -> Any:
        return None if value is None else json.loads(value)

    turns = [
        Turn.model_validate({
            "index": t["idx"],
            **{key: load(t[f"{key}_json"]) for key in _TURN_JSON if t[f"{key}_json"] is not None},
            **{key: t[key] for key in _TURN_COLUMNS if t[key] is not None},
            "parse_ok": bool(t["parse_ok"]),
        })
        for t in store.turns(row["id"])
    ]
    outcome = None
    if row["choice"] is not None:
        outcome = Outcome(
            choice=row["choice"], success=bool(row["success"]), turns=row["n_turns"], violations=row["violations"] or 0,
            mental_state_appeals=row["mental_state_appeals"] or 0, parse_failures=row["parse_failures"] or 0,
            final_words=row["final_words"] or "",
        )
    return Episode.model_validate({
        "id": row["id"],
        "scenario": load(row["scenario_json"]),
        "persuader": {"name": row["persuader"]},
        "target": {"kind": row["target"], "personality": row["personality"], "seed": row["seed"]},
        "condition": row["condition"],
        "rules": row["rules"],
        "turns": turns,
        "outcome": outcome,
        "status": row["status"],
        "error": row["error"] or "",
        "kind": row["kind"],
        "meta": load(row["meta_json"]) or {},
    })


def session_trajectory(store: Store, session_id: str) -> dict[str, Any]:
    """A stored session as a trajectory line (DESIGN.md 2): `session_episode(...).to_trajectory()`."""
    return session_episode(store, session_id).to_trajectory()
