"""Training tokens per second for LoRA SFT on the embedded SmolLM2 on this machine's CPU, without and with packing.

The examples are real: planner games on generated scenarios, turned into chatml rows by data prep, so the
sequence lengths are those of the tutorial. Tokens are the non-padding input tokens the Trainer counted; the
first step (warm-up) is left out of the per-step median. On a CPU shared with other jobs, `--threads 1` is
far faster than two spin-waiting threads.
Run: .venv/bin/python bench/train.py [--steps 6] [--batch-size 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the `engine` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from engine.game.episode import play  # noqa: E402
from engine.game.generator import generate  # noqa: E402
from engine.jsonl import write_json_lines  # noqa: E402
from engine.pipeline.dataprep import sft_row, turn_examples  # noqa: E402
from engine.pipeline.training import sft  # noqa: E402
from engine.pipeline.training.config import load_config  # noqa: E402
from engine.players.registry import make_persuader, make_target  # noqa: E402
from engine.store import Store  # noqa: E402


def planner_rows(n_games: int, seed: int) -> list[dict]:
    rows = []
    for i, scenario in enumerate(generate(n_games, seed)):
        episode = play(scenario, make_persuader("planner"), make_target("rational"), seed=seed + i)
        rows += [sft_row(ex, "chatml") for ex in turn_examples(episode)]
    return rows


def measure(data: str, folder: Path, packing: bool, args: argparse.Namespace) -> dict:
    store = Store(folder / "bench.db")
    cfg = load_config(None, dict(data=data, output=str(folder / f"packing-{packing}"), max_steps=args.steps,
                                 batch_size=args.batch_size, max_seq_len=args.max_seq_len, packing=packing,
                                 save_steps=10_000, cpu_threads=args.threads))
    result = sft.train(cfg, store)
    steps = store.training_steps(result["run_id"])
    per_step = [s["tokens_per_s"] for s in steps[1:] if s["tokens_per_s"]]
    m = result["metrics"]
    return {"packing": packing, "steps": m["global_step"], "tokens": m["num_input_tokens_seen"],
            "seconds": round(m["train_runtime"], 1),
            "tokens_per_s_overall": round(m["num_input_tokens_seen"] / m["train_runtime"], 1),
            "tokens_per_s_median_after_warmup": round(statistics.median(per_step), 1) if per_step else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-seq-len", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--games", type=int, default=12, help="planner games to draw examples from")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = planner_rows(args.games, seed=7)
        data = folder / "train.jsonl"
        write_json_lines(data, rows)
        print(f"{len(rows)} examples from {args.games} planner games; batch {args.batch_size}, {args.steps} steps")
        for packing in (False, True):
            print(json.dumps(measure(str(data), folder, packing, args)), flush=True)


if __name__ == "__main__":
    main()
