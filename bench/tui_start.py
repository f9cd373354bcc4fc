"""How fast the lab opens, and how the Sessions pane copes with 100,000 sessions. Prints its figures.

1. First paint of `ptom-lab`: a fresh Python process per try that imports the app and runs it headless
   (`App.run_test`) until Textual's Ready event (the first frame is rendered), on a new store (migrations run,
   once in a store's life) and on an existing one (every later start); it also checks that torch and
   transformers were never imported. Target: under 1 s. With `--tmux` it also times the real
   command in a real terminal: from `tmux new-session ... ptom-lab` until "Arena" is on the captured pane.
2. Sessions at scale: a store of 100,000 sessions (two turns each, so FTS has 200,000 rows) built with
   sqlite-utils `insert_all` from a few real games; then, headless at 120x40, the time to open the pane
   (F6 until the first page is on screen) and to apply each filter, a full-text search and the next page.

    .venv/bin/python bench/tui_start.py [--tries 5] [--sessions 100000] [--tmux] [--keep DB]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FIRST_PAINT = r"""
import asyncio, json, sys, time
t0 = time.perf_counter()
from ptom_tui.app import LabApp
t_import = time.perf_counter() - t0

async def main():
    app = LabApp(sys.argv[1])
    async with app.run_test(size=(120, 40)) as pilot:   # returns once the app is Ready (first frame rendered)
        t_ready = time.perf_counter() - t0
        heavy = sorted(m for m in ("torch", "transformers", "trl", "peft") if m in sys.modules)
        await pilot.pause(0.3)
    print(json.dumps({"import_s": t_import, "first_paint_s": t_ready, "heavy": heavy}))

asyncio.run(main())
"""


def first_paint(tries: int, migrated: bool = False) -> list[dict]:
    """A new store each time: its migrations run (they import sqlite-utils, and with it pandas), as on the very
    first start; with `migrated` the store is made beforehand, as on every later start."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(tries):
            db = str(Path(tmp) / f"empty{i}.db")
            if migrated:
                subprocess.run([sys.executable, "-c", f"from engine.store import Store; Store({db!r})"], check=True,
                               cwd=ROOT, timeout=120)
            done = subprocess.run([sys.executable, "-c", FIRST_PAINT, db], capture_output=True, text=True,
                                  cwd=ROOT, timeout=120)
            if done.returncode:
                raise SystemExit(f"the app failed to start:\n{done.stderr}")
            out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def tmux_first_paint(tries: int) -> list[float]:
    """Wall time until the lab's tabs are visible in a real 120x40 terminal (tmux polls every 10 ms)."""
    exe = Path(sys.executable).parent / "ptom-lab"
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(tries):
            name = f"ptom-bench-{os.getpid()}-{i}"
            start = time.perf_counter()
            subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40",
                            f"{exe} --db {tmp}/t{i}.db"], check=True, cwd=ROOT)
            try:
                while time.perf_counter() - start < 30:
                    pane = subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True,
                                          text=True).stdout
                    if "Arena" in pane and "Sessions" in pane:
                        times.append(time.perf_counter() - start)
                        break
                    time.sleep(0.01)
                else:
                    raise SystemExit("the lab did not paint in tmux within 30 s")
            finally:
                subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    return times


def build_big_store(path: str, n: int) -> float:
    """`n` sessions with two turns each, copied from a few real games with new ids, times and seeds."""
    from engine.game.episode import play
    from engine.game.scenario import ScenarioLibrary
    from engine.players.persuaders.baselines import RevealAll
    from engine.players.targets.rational import PERSONALITIES, RationalTarget
    from engine.store import Store, StoreListener

    started = time.perf_counter()
    scratch = Store(":memory:")
    library = ScenarioLibrary()
    scenario_ids = sorted(library.all())
    for i, sid in enumerate(scenario_ids):
        play(library.get(sid), RevealAll(), RationalTarget(), personality="cooperative", seed=i, kind="play",
             listeners=[StoreListener(scratch)])
    games = list(scratch.db.query("SELECT * FROM sessions"))
    turns = {g["id"]: list(scratch.db.query("SELECT * FROM turns WHERE session_id = ? ORDER BY idx LIMIT 2",
                                            [g["id"]])) for g in games}
    kinds = ("arena", "play", "evaluate", "generate")
    agents = ("planner", "greedy", "reveal-all", "random", "openai:gpt-4o", "local")
    personalities = list(PERSONALITIES)
    store = Store(path)

    def session_rows():
        for i in range(n):
            g = games[i % len(games)]
            yield {**g, "id": f"s{i:07d}", "kind": kinds[i % 4], "persuader": agents[i % len(agents)],
                   "personality": personalities[i % len(personalities)], "seed": i, "success": (i % 3 != 0),
                   "created_at": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00+00:00"}

    def turn_rows():
        k = 0
        for i in range(n):
            for t in turns[games[i % len(games)]["id"]]:
                k += 1
                yield {**t, "id": k, "session_id": f"s{i:07d}",
                       "message": f"{t['message']} (copy {i})" if i % 1000 == 0 else t["message"]}

    with store.transaction():
        store.db["sessions"].insert_all(session_rows(), batch_size=2000)
        store.db["turns"].insert_all(turn_rows(), batch_size=2000)
    store.close()
    scratch.close()
    return time.perf_counter() - started


async def sessions_timings(db: str) -> dict[str, tuple[float, float]]:
    from textual.widgets import DataTable, Input, Select

    from ptom_tui.app import LabApp

    app = LabApp(db)
    out: dict[str, tuple[float, float]] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.query("SessionsPane"):  # it mounts just after the first frame
            await pilot.pause(0.01)
        pane = app.query_one("SessionsPane")
        table = app.query_one("#sessions-table", DataTable)
        status = app.query_one("#sessions-status")

        async def until(label: str, condition, action) -> None:
            """Time `action` until its rows are on screen, and until their count is too."""
            rows_before, counts_before = pane.rows_shown, pane.pages_shown
            start = time.perf_counter()
            await action()
            rows_at = None
            while not (pane.pages_shown > counts_before and condition()):
                if rows_at is None and pane.rows_shown > rows_before:
                    rows_at = time.perf_counter() - start
                if time.perf_counter() - start > 60:
                    raise SystemExit(f"{label}: no answer in 60 s")
                await pilot.pause(0.002)
            total = time.perf_counter() - start
            out[label] = (total if rows_at is None else rows_at, total)

        # the pane loads its first page at start-up: wait for that and the other start-up work, then time a
        # fresh open (F6 + reload)
        while table.row_count == 0:
            await pilot.pause(0.01)
        await pilot.pause(3.0)  # let the start-up workers (player registry, scenario files, pollers) finish

        # actions are called directly: `pilot.press` also waits for the tab underline's animation to finish
        async def open_pane() -> None:
            app.action_show_pane("sessions")  # what F6 does
            pane.refresh_rows()

        await until("open Sessions (F6, page 1 of 100 rows)", lambda: table.row_count == 100, open_pane)

        async def set_value(selector: str, value: str) -> None:
            app.query_one(selector).value = value

        async def nothing() -> None:
            return None

        await until("filter kind = evaluate", lambda: "of 25000" in str(status.content),
                    lambda: set_value("#sessions-kind", "evaluate"))
        await until("+ outcome = failure", lambda: table.row_count > 0, lambda: set_value("#sessions-outcome", "failure"))
        await until("+ scenario = city_budget", lambda: table.row_count > 0,
                    lambda: set_value("#sessions-scenario", "city_budget"))

        async def clear_filters() -> None:
            app.query_one("#sessions-kind", Select).clear()
            app.query_one("#sessions-outcome", Select).clear()
            app.query_one("#sessions-scenario", Input).clear()

        await until("clear filters (all 100,000)", lambda: "of 100000" in str(status.content), clear_filters)
        await until("agent = openai:gpt-4o", lambda: table.row_count == 100,
                    lambda: set_value("#sessions-agent", "openai:gpt-4o"))
        await until("(agent cleared)", lambda: "of 100000" in str(status.content),
                    lambda: set_value("#sessions-agent", ""))
        await until("search 'copy' (FTS, 100 hits)", lambda: "of 100 " in str(status.content),
                    lambda: set_value("#sessions-search", "copy"))
        await until("search 'rent' (FTS, common word)", lambda: table.row_count > 0,
                    lambda: set_value("#sessions-search", "rent"))
        await until("(search cleared)", lambda: "of 100000" in str(status.content),
                    lambda: set_value("#sessions-search", ""))
        async def next_page() -> None:
            pane.action_next_page()  # what n does

        await until("next page (n)", lambda: str(status.content).startswith("101-200"), next_page)
    out.pop("(agent cleared)", None)
    out.pop("(search cleared)", None)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tries", type=int, default=5)
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--tmux", action="store_true", help="also time the real command in a tmux terminal")
    ap.add_argument("--keep", default=None, help="keep the big store at this path")
    args = ap.parse_args()

    runs = []
    for migrated, store in ((False, "a new store"), (True, "an existing store")):
        tried = first_paint(args.tries, migrated)
        paints = [r["first_paint_s"] for r in tried]
        imports = [r["import_s"] for r in tried]
        print(f"first paint on {store}, headless 120x40, {args.tries} fresh processes: median "
              f"{statistics.median(paints):.3f} s (min {min(paints):.3f}, max {max(paints):.3f}); of which importing "
              f"the app {statistics.median(imports):.3f} s")
        runs += tried
    heavy = sorted({m for r in runs for m in r["heavy"]})
    print(f"heavy modules imported by the first paint: {heavy or 'none'}")
    if heavy:
        return 1
    if args.tmux and shutil.which("tmux"):
        t = tmux_first_paint(args.tries)
        print(f"first paint in a real tmux terminal (launch to tabs visible): median {statistics.median(t):.3f} s "
              f"(min {min(t):.3f}, max {max(t):.3f})")

    tmp = tempfile.mkdtemp()
    db = args.keep or str(Path(tmp) / "big.db")
    built = build_big_store(db, args.sessions)
    size = Path(db).stat().st_size / 1e6
    print(f"built a store of {args.sessions} sessions ({2 * args.sessions} turns) in {built:.1f} s, {size:.0f} MB")
    timings = asyncio.run(sessions_timings(db))
    print(f"  {'Sessions pane at 120x40':<40} {'rows shown':>10} {'+ count':>10}")
    for label, (rows, total) in timings.items():
        print(f"  {label:<40} {1000 * rows:7.0f} ms {1000 * total:7.0f} ms")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
