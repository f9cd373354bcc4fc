"""One store, many writers: two `generate` runs, a `trajectories import` and an `evaluate` at once, nothing lost.

Issue 18: an import held one transaction for 33 s and every other writer died with "database is locked" after the
30 s busy timeout. Now long writes commit in batches and a writer that finds the store busy waits (one notice on
stderr) instead of crashing. This script starts the four commands as subprocesses on one fresh store, plus a
holder that keeps the write lock for `--hold` seconds at the start (a stand-in for a long transaction, so the wait
is exercised every run), then checks every process exited 0, every expected session is stored and finished, the
output files are whole, and `PRAGMA integrity_check` says ok.
Run: .venv/bin/python bench/concurrency.py [--generate 100] [--import-n 400] [--evaluate 20] [--hold 20]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("holding the write lock", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def ptom(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine", *args]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generate", type=int, default=100, help="conversations each generate run makes")
    parser.add_argument("--import-n", type=int, default=400, help="conversations in the imported file")
    parser.add_argument("--evaluate", type=int, default=20, help="evaluation episodes (planner vs rational)")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds a holder keeps the write lock at the start")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = str(folder / "shared.db")
        started = time.perf_counter()
        to_import = folder / "import.jsonl"
        subprocess.run(ptom("generate", "--n", str(args.import_n), "--seed", "9", "--persuader", "reveal-all",
                            "--no-store", "--workers", "1", "--out", str(to_import)),
                       check=True, capture_output=True, text=True)
        subprocess.run(ptom("sessions", "list", "--db", db), check=True, capture_output=True)  # create and migrate
        print(f"setup: {args.import_n} conversations to import made in {time.perf_counter() - started:.1f} s")

        commands = {
            "holder": [sys.executable, "-c", HOLDER, db, str(args.hold)],
            "generate-1": ptom("generate", "--n", str(args.generate), "--seed", "1", "--workers", "1",
                               "--out", str(folder / "g1.jsonl"), "--db", db),
            "generate-2": ptom("generate", "--n", str(args.generate), "--seed", "2", "--workers", "1",
                               "--out", str(folder / "g2.jsonl"), "--db", db),
            "import": ptom("trajectories", "import", str(to_import), "--db", db),
            "evaluate": ptom("evaluate", "--model", "planner", "--num-eval", str(args.evaluate), "--name", "bench",
                             "--db", db),
        }
        started = time.perf_counter()
        failed = False
        with ExitStack() as files:  # logs in files, not pipes: a full pipe would stall a writer
            logs = {name: files.enter_context(open(folder / f"{name}.log", "w+")) for name in commands}
            procs = {}
            for name, cmd in commands.items():
                procs[name] = subprocess.Popen(cmd, stdout=logs[name], stderr=subprocess.STDOUT, text=True)
                while name == "holder" and "holding" not in (folder / "holder.log").read_text():
                    time.sleep(0.05)  # the others start once the lock is held, and find the store busy
            for name, proc in procs.items():
                proc.wait(timeout=600)
                logs[name].seek(0)
                log = logs[name].read().splitlines()
                notices = [line for line in log if "notice: the store" in line]
                print(f"{name:<11} exit {proc.returncode}  after {time.perf_counter() - started:5.1f} s  "
                      f"busy notices {len(notices)}")
                if proc.returncode != 0:
                    failed = True
                    print("  " + "\n  ".join(log[-5:]))
        wall = time.perf_counter() - started

        conn = sqlite3.connect(db)
        counts = dict(conn.execute("SELECT kind || '/' || status, count(*) FROM sessions GROUP BY 1").fetchall())
        expected = {"generate/finished": 2 * args.generate, "import/finished": args.import_n,
                    "evaluate/finished": args.evaluate}
        lines = {n: len((folder / f"{n}.jsonl").read_text().splitlines()) for n in ("g1", "g2")}
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        run_status = conn.execute("SELECT status FROM eval_runs WHERE name = 'bench'").fetchone()
        print(f"all five at once: {wall:.1f} s wall")
        print(f"sessions by kind/status: {counts} (expected {expected})")
        print(f"generate output lines: {lines} (expected {args.generate} each); evaluation run: {run_status[0]}")
        print(f"PRAGMA integrity_check: {integrity}")
        ok = (not failed and counts == expected and set(lines.values()) == {args.generate}
              and integrity == "ok" and run_status[0] == "finished")
        print("OK: nothing lost" if ok else "FAILED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
