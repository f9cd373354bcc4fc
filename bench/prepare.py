"""Data prep speed: 2,000 conversations to chatml with token counting (the embedded SmolLM2 tokenizer).

Aim (issue 4): under 10 seconds. The trajectories are made first (untimed) with the planner when it is
registered, else reveal-all, on generated scenarios against the rational target (personalities mixed, a tenth of
scenarios held out as validation). The timed part is what `ptom-lab prepare` does: read and validate the file,
split, build every prompt, count tokens, write the files; the tokenizer load is timed on its own.
Run: .venv/bin/python bench/prepare.py [--conversations 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the `engine` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from engine.cli.prepare import print_summary  # noqa: E402
from engine.dataprep import PrepareOptions, prepare  # noqa: E402
from engine.episode import play  # noqa: E402
from engine.generator import generate  # noqa: E402
from engine.players import make_persuader, make_target, persuader_names  # noqa: E402
from engine.targets.rational import PERSONALITIES  # noqa: E402


def make_trajectories(path: Path, n: int, seed: int = 7) -> str:
    """`n` conversations on `n // 4` generated scenarios; returns the persuader used."""
    name = "planner" if "planner" in persuader_names() else "reveal-all"
    scenarios = list(generate(max(1, n // 4), seed))
    personalities = list(PERSONALITIES)
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            ep = play(
                scenarios[i % len(scenarios)], make_persuader(name), make_target("rational"),
                personality=rng.choice(personalities), seed=i, kind="bench",
            )
            fh.write(json.dumps(ep.to_trajectory()) + "\n")
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "trajectories.jsonl"
        started = time.perf_counter()
        who = make_trajectories(src, args.conversations)
        made = time.perf_counter() - started
        size = src.stat().st_size / 1e6
        print(f"made {args.conversations:,} conversations with {who} vs rational in {made:.1f} s ({size:.1f} MB)")

        started, cpu = time.perf_counter(), time.process_time()
        from engine.tokens import load_tokenizer

        load_tokenizer(None)
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        prepared = prepare(PrepareOptions(str(src), str(Path(tmp) / "training_data.jsonl"), "chatml", val=0.1, seed=0))
        secs = time.perf_counter() - started
        cpu = time.process_time() - cpu
        examples = sum(prepared.rows.values())
        print(
            f"prepare chatml: {args.conversations:,} conversations -> {examples:,} examples in {secs:.2f} s "
            f"({examples / secs:,.0f} examples/s) + tokenizer load (with transformers import) {loaded:.2f} s "
            f"= {secs + loaded:.2f} s wall, {cpu:.2f} s CPU (all threads)"
        )
        print_summary(prepared.summary)


if __name__ == "__main__":
    main()
