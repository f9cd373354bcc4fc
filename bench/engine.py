"""Games per second for reveal-all against the rational target, without and with logging to a fresh store.

Aim (issue 2): at least 2,000 games/s on one core without logging and 200 games/s with every turn committed.
Run: .venv/bin/python bench/engine.py [--games 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the `engine` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from engine.game.episode import play  # noqa: E402
from engine.game.scenario import load_file  # noqa: E402
from engine.players.persuaders.baselines import RevealAll  # noqa: E402
from engine.players.targets.rational import PERSONALITIES, RationalTarget  # noqa: E402
from engine.store import Store, StoreListener  # noqa: E402

HELDOUT = Path(__file__).resolve().parent.parent / "scenarios" / "heldout.jsonl"


def games(n: int, listeners_for=lambda: []) -> tuple[float, int, int]:
    scenarios = load_file(HELDOUT)
    personalities = list(PERSONALITIES)
    listeners = listeners_for()
    turns = wins = 0
    started = time.perf_counter()
    for i in range(n):
        ep = play(scenarios[i % len(scenarios)], RevealAll(), RationalTarget(),
                  personality=personalities[i % len(personalities)], seed=i, listeners=listeners)
        turns += len(ep.turns)
        wins += ep.outcome.success
    return time.perf_counter() - started, turns, wins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=1000)
    args = parser.parse_args()
    n = args.games
    games(50)  # warm up imports and caches
    secs, turns, wins = games(n)
    print(f"reveal-all vs rational, {n} games, no logging:   {n / secs:8.0f} games/s  "
          f"({turns} turns, {wins / n:.0%} success, {secs:.2f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "sessions.db")
        secs, turns, _ = games(n, lambda: [StoreListener(store)])
        rows = store.db.execute("SELECT count(*) FROM turns").fetchone()[0]
        print(f"reveal-all vs rational, {n} games, every turn committed: {n / secs:8.0f} games/s  "
              f"({rows} turn rows, {turns / secs:.0f} commits/s of turns, {secs:.2f} s)")
        store.close()


if __name__ == "__main__":
    main()
