"""The one store: a SQLite file (`sessions.db`) through sqlite-utils, in WAL mode, migrated on open.

Every game is a *session* with its *turns*; a turn is committed the moment it ends, so a crash loses at most
the turn in progress. A schema change is a new function appended to `MIGRATIONS`, never an edit of an applied one.
The file opens in Datasette as it is. API keys never enter it: nothing here stores an environment.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def _import_sqlite_utils():  # noqa: ANN202 - returns the module
    """sqlite-utils, imported as if pandas and numpy were absent.

    When they are installed (trl and datasets bring them) sqlite-utils imports them only to map `pd.Timestamp`
    and numpy scalar types to column types when it creates columns from data; this store creates every column
    in its migrations and writes plain Python values. Those two imports cost about 0.8 s of every `ptom-lab`
    start and of the TUI's first paint. A library already imported is left alone, and both stay importable:
    they are hidden only while sqlite-utils loads."""
    import sys

    hidden = [m for m in ("pandas", "numpy") if m not in sys.modules]
    if "sqlite_utils" in sys.modules or not hidden:
        import sqlite_utils

        return sqlite_utils
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` now raises ImportError
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            del sys.modules[name]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()

from engine.errors import LabError  # noqa: E402
from engine.game import Episode, Turn  # noqa: E402

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


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("001_sessions_and_turns", _m001_sessions),
    ("002_research_loop", _m002_research_loop),
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
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        self.db = sqlite_utils.Database(conn)
        self.lock = threading.RLock()
        self.migrate()

    # ----- schema -----------------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        applied: list[str] = []
        with self.lock:
            self.db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
            done = {row[0] for row in self.db.execute("SELECT name FROM migrations").fetchall()}
            for name, fn in MIGRATIONS:
                if name in done:
                    continue
                with self.transaction():
                    fn(self.db)
                    self.db.execute("INSERT INTO migrations VALUES (?, ?)", [name, now()])
                applied.append(name)
        return applied

    def transaction(self):
        """BEGIN IMMEDIATE ... COMMIT: a writer takes the lock up front, so readers never see half a write."""
        return _Transaction(self.db.conn, self.lock)

    def close(self) -> None:
        self.db.conn.close()

    # ----- sessions and turns ------------------------------------------------------------------------
    def start_session(self, episode: Episode) -> None:
        with self.transaction():
            self.db["sessions"].insert(
                {
                    "id": episode.id,
                    "kind": episode.kind,
                    "status": episode.status,
                    "scenario_id": episode.scenario.id,
                    "scenario_json": dumps(episode.scenario.to_dict()),
                    "persuader": episode.persuader,
                    "target": episode.target,
                    "personality": episode.personality,
                    "condition": episode.condition,
                    "seed": episode.seed,
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
        with self.transaction():
            self.db["turns"].insert(
                {
                    "session_id": session_id,
                    "idx": turn.index,
                    "message": turn.message,
                    "target_reply": turn.target_reply,
                    "moves_json": dumps([m.text() for m in turn.moves]),
                    "refused_json": dumps(turn.refused),
                    "statements_json": dumps([s.text() for s in turn.statements]),
                    "reasoning": turn.reasoning,
                    "belief_json": dumps(turn.belief),
                    "counterfactual_json": dumps(turn.counterfactual),
                    "target_state_json": dumps(turn.target_state),
                    "raw": turn.raw,
                    "parse_ok": int(turn.parse_ok),
                    "parse_error": turn.parse_error,
                    "usage_json": dumps(turn.usage),
                    "target_usage_json": dumps(turn.target_usage),
                    "latency_ms": turn.latency_ms,
                    "created_at": now(),
                }
            )
            self.db.execute(
                "UPDATE sessions SET n_turns = ?, updated_at = ? WHERE id = ?", [turn.index, now(), session_id]
            )

    def end_session(self, episode: Episode) -> None:
        o = episode.outcome
        with self.transaction():
            self.db["sessions"].update(
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

    def get_session(self, session_id: str) -> dict[str, Any]:
        rows = list(self.db.query("SELECT * FROM sessions WHERE id = ?", [session_id]))
        if not rows:
            rows = list(self.db.query("SELECT * FROM sessions WHERE id LIKE ? LIMIT 2", [session_id + "%"]))
            if len(rows) != 1:
                raise LabError(f"no session '{session_id}' in {self.path}" if not rows else f"'{session_id}' is ambiguous")
        return rows[0]

    def turns(self, session_id: str) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM turns WHERE session_id = ? ORDER BY idx", [session_id]))

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
        return list(self.db.query(sql, [*params, limit, offset]))

    def count_sessions(self, **filters: Any) -> int:
        where, params = self._filters(
            filters.get("kind"), filters.get("scenario"), filters.get("agent"), filters.get("success"),
            filters.get("search"), filters.get("archived", False),
        )
        return self.db.execute(f"SELECT count(*) FROM sessions {where}", params).fetchone()[0]

    @staticmethod
    def _filters(kind, scenario, agent, success, search, archived) -> tuple[str, list[Any]]:
        clauses, params = ["archived = ?"], [int(archived)]
        if kind:
            clauses.append("kind = ?")
            params.append(kind)
        if scenario:
            clauses.append("scenario_id = ?")
            params.append(scenario)
        if agent:
            clauses.append("(persuader = ? OR target = ?)")
            params += [agent, agent]
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
        with self.transaction():
            self.db["sessions"].update(self.get_session(session_id)["id"], {"archived": int(archived)})

    def iter_sessions(self, sql_where: str = "", params: list[Any] | None = None) -> Iterator[dict[str, Any]]:
        yield from self.db.query(f"SELECT * FROM sessions {sql_where}", params or [])


def _fts_query(text: str) -> str:
    """Each word as a quoted prefix term, so user input never breaks FTS syntax."""
    words = [w.replace('"', "") for w in text.split() if w.strip('"')]
    return " ".join(f'"{w}"*' for w in words) or '""'


class _Transaction:
    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self.conn, self.lock, self.outer = conn, lock, False

    def __enter__(self) -> None:
        self.lock.acquire()
        self.outer = not self.conn.in_transaction
        if self.outer:
            self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.outer:
                self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()


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


def session_outcome(row: dict[str, Any]) -> str:
    """success / failure for a finished game, else its status (running, interrupted, errored)."""
    return row["status"] if row["success"] is None else ("success" if row["success"] else "failure")


def session_trajectory(store: Store, session_id: str) -> dict[str, Any]:
    """A stored session in the trajectory schema (DESIGN.md 2): the same shape `Episode.to_trajectory` gives."""
    row = store.get_session(session_id)

    def load(value: str | None) -> Any:
        return None if value is None else json.loads(value)

    turns = []
    for t in store.turns(row["id"]):
        turn = {
            "index": t["idx"],
            "belief": load(t["belief_json"]),
            "reasoning": t["reasoning"] or "",
            "counterfactual": load(t["counterfactual_json"]),
            "moves": load(t["moves_json"]) or [],
            "message": t["message"],
            "target_reply": t["target_reply"],
            "statements": load(t["statements_json"]) or [],
            "target_state": load(t["target_state_json"]) or {},
        }
        if load(t["refused_json"]):
            turn["refused"] = load(t["refused_json"])
        if not t["parse_ok"]:
            turn["parse_ok"], turn["parse_error"] = False, t["parse_error"]
        if t["raw"]:
            turn["raw"] = t["raw"]
        for key in ("usage", "target_usage"):
            if load(t[f"{key}_json"]):
                turn[key] = load(t[f"{key}_json"])
        turns.append(turn)
    outcome = None
    if row["choice"] is not None:
        outcome = {
            "choice": row["choice"],
            "success": bool(row["success"]),
            "turns": row["n_turns"],
            "violations": row["violations"] or 0,
            "mental_state_appeals": row["mental_state_appeals"] or 0,
            "parse_failures": row["parse_failures"] or 0,
        }
    return {
        "id": row["id"],
        "scenario": load(row["scenario_json"]),
        "persuader": {"name": row["persuader"]},
        "target": {"kind": row["target"], "personality": row["personality"], "seed": row["seed"]},
        "condition": row["condition"],
        "turns": turns,
        "outcome": outcome,
        "status": row["status"],
    }
