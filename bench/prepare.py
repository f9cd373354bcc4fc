"""Data prep speed and memory: 20,000 conversations to chatml, with token counting (the embedded SmolLM2 tokenizer).

Aims: issue 4, under 10 seconds for 2,000 conversations; issue 18, 20,000 conversations (about 160 MB) under
500 MB peak memory at no loss of speed (it peaked at 2.5 GB when `prepare` held the whole input in memory).
`--distinct` conversations are played first (untimed) with the planner when it is registered, else reveal-all,
on generated scenarios against the rational target (personalities mixed); the file is filled up to
`--conversations` lines with copies under new ids (same scenarios, so the split has the same groups). The timed
part is `ptom-lab prepare --format chatml --val 0.1` run as a child process, as a user runs it: read and validate
the file, split, build every prompt, count tokens, write the files (tokenizer load included). Its peak memory
is the child's maximum resident set size (`resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`).
Run: .venv/bin/python bench/prepare.py [--conversations 20000] [--distinct 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the `engine` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from engine.game.episode import play  # noqa: E402
from engine.game.generator import generate  # noqa: E402
from engine.players.registry import make_persuader, make_target, persuader_names  # noqa: E402
from engine.players.targets.rational import PERSONALITIES  # noqa: E402


def make_trajectories(path: Path, n: int, distinct: int, seed: int = 7) -> str:
    """`n` conversation lines, `distinct` of them played on `distinct // 4` generated scenarios, the rest copies
    of those under new ids; returns the persuader used."""
    name = "planner" if "planner" in persuader_names() else "reveal-all"
    distinct = min(n, distinct)
    scenarios = list(generate(max(1, distinct // 4), seed))
    personalities = list(PERSONALITIES)
    rng = random.Random(seed)
    played = []
    for i in range(distinct):
        ep = play(
            scenarios[i % len(scenarios)], make_persuader(name), make_target("rational"),
            personality=rng.choice(personalities), seed=i, kind="bench",
        )
        played.append(ep.to_trajectory())
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            traj = played[i % distinct]
            fh.write(json.dumps(traj if i < distinct else {**traj, "id": f"{traj['id']}-copy{i}"}) + "\n")
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--distinct", type=int, default=2_000, help="conversations actually played (the rest are copies)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "trajectories.jsonl"
        started = time.perf_counter()
        who = make_trajectories(src, args.conversations, args.distinct)
        made = time.perf_counter() - started
        size = src.stat().st_size / 1e6
        print(f"made {args.conversations:,} conversations ({min(args.distinct, args.conversations):,} played with {who} "
              f"vs rational, the rest copies) in {made:.1f} s ({size:.1f} MB)")
        out = Path(tmp) / "training_data.jsonl"
        command = [sys.executable, "-m", "engine", "prepare", "--db", str(Path(tmp) / "s.db"), "--input", str(src),
                   "--output", str(out), "--format", "chatml", "--val", "0.1", "--seed", "0"]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        secs = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mb, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # ru_maxrss is in KiB on Linux
        if result.returncode != 0:
            sys.exit(f"prepare failed ({result.returncode}): {result.stderr.strip()}")
        examples = sum(f.read_bytes().count(b"\n") for f in (out, out.with_name("training_data.val.jsonl")))
        print(result.stdout.rstrip())
        print(
            f"prepare chatml: {args.conversations:,} conversations ({size:.1f} MB) -> {examples:,} examples in "
            f"{secs:.2f} s wall, {cpu:.2f} s CPU ({args.conversations / secs:,.0f} conversations/s, tokenizer load "
            f"and Python start included); peak memory {peak_mb:,.0f} MB (aim: under 500 MB)"
        )


if __name__ == "__main__":
    main()
