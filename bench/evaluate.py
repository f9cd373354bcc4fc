"""Evaluation speed: the planner over 100 held-out episodes, a local model batched against one at a time, and a
trained adapter over the whole held-out set.

Aims (issue 7): 100 episodes planner vs rational in under 5 seconds, every episode logged to a fresh store;
the local model's episodes per minute at --concurrency 8 at least 3x those at --concurrency 1 (the batcher in
engine/llm/local.py answers the concurrent episodes' requests in one generate call). Issue 15: `--adapter PATH`
plays that adapter (its recorded reply format, greedy, float32 weights: the CPU default) on `--adapter-episodes`
held-out scenarios, personality mix, at --concurrency 8: all 100 in under 15 minutes. `--engine` picks the local
engine (`auto`: llama.cpp when llama-cpp-python is installed, engine/llm/llamacpp.py; else transformers).
Run: .venv/bin/python bench/evaluate.py [--episodes 100] [--local-episodes 8] [--local-turns 2] [--skip-local]
     [--adapter models/ptom-smollm2 [--adapter-episodes 100] [--engine auto|transformers|llama.cpp]
     [--db sessions.db --name NAME]]
     (--db keeps the adapter's run in that store under NAME, for `ptom-lab compare NAME ...`)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the `engine` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from engine.game.generator import HELDOUT_PATH  # noqa: E402
from engine.llm.local import shared_backend  # noqa: E402
from engine.pipeline.evaluation import EvalConfig, evaluate  # noqa: E402
from engine.players.registry import persuader_names  # noqa: E402
from engine.store import Store  # noqa: E402

HELDOUT = str(HELDOUT_PATH)


def timed(store: Store, config: EvalConfig, name: str, concurrency: int) -> tuple[float, dict]:
    started = time.perf_counter()
    res = evaluate(store, config, name=name, concurrency=concurrency)
    return time.perf_counter() - started, res.results


def adapter_run(store: Store, adapter: str, episodes: int, name: str, engine: str) -> None:
    """Wall time and outcome of one adapter over `episodes` held-out scenarios, the way the tutorial plays it."""
    spec = f"local:{adapter}?temperature=0&engine={engine}"
    cfg = EvalConfig(model=spec, scenarios=HELDOUT, num_eval=episodes, personality="mix")
    wall, results = timed(store, cfg, name, 8)
    backend = shared_backend(adapter, engine=engine)
    cache = backend.prefix_cache
    s, moves = results["success"], results["moves"]
    print(f"{spec} on {backend.engine}: {episodes} held-out episodes (mix, seed 0) at concurrency 8 in {wall / 60:.1f} min, "
          f"success {s['successes']}/{s['n']}, {moves['turns']} turns, unparseable {results['unparseable']}, "
          f"tokens {results['usage']}  [aim: 100 episodes under 15 min]", flush=True)
    print(f"prompt tokens read {cache.read_tokens:,}, found in the prefix cache {cache.reused_tokens:,} "
          f"({cache.reused_tokens / max(1, cache.read_tokens + cache.reused_tokens):.0%})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--local-episodes", type=int, default=8, help="episodes per local measurement")
    ap.add_argument("--local-turns", type=int, default=2, help="max turns of the local episodes")
    ap.add_argument("--local-tokens", type=int, default=64, help="max new tokens per local reply")
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--adapter", help="a trained adapter folder to play on the held-out set")
    ap.add_argument("--adapter-episodes", type=int, default=100)
    ap.add_argument("--db", help="keep the adapter's run in this store (default: a temporary one)")
    ap.add_argument("--name", default="bench-adapter", help="the adapter run's name in --db")
    ap.add_argument("--engine", default="auto", choices=("auto", "transformers", "llama.cpp"),
                    help="the local engine the adapter plays on")
    args = ap.parse_args()
    agent = "planner" if "planner" in persuader_names() else "greedy"
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        config = EvalConfig(model=agent, scenarios=HELDOUT, num_eval=args.episodes)
        wall, results = timed(store, config, "bench-planner", 1)
        s = results["success"]
        print(f"{args.episodes} episodes {agent} vs rational (logged): {wall:.2f} s "
              f"({args.episodes / wall:.0f} episodes/s), success {s['successes']}/{s['n']}  [aim: under 5 s]")
        if args.adapter:
            adapter_run(Store(args.db) if args.db else store, args.adapter, args.adapter_episodes, args.name,
                        args.engine)
        if args.skip_local or "local" not in persuader_names():
            print("local model: skipped")
            return
        # greedy: both arms write the same replies; transformers, whose batcher this measures
        spec = f"local:?max_tokens={args.local_tokens}&temperature=0&engine=transformers"
        rates = {}
        for concurrency in (1, 8):
            n = args.local_episodes if concurrency > 1 else max(1, args.local_episodes // 4)
            cfg = EvalConfig(model=spec, scenarios=HELDOUT, num_eval=n, max_turns=args.local_turns)
            timed(store, EvalConfig(model=spec, scenarios=HELDOUT, num_eval=1, max_turns=1), f"warm-{concurrency}", 1)
            shared_backend("", engine="transformers").prefix_cache.clear()  # both arms start without the warm-up's prompts
            wall, _ = timed(store, cfg, f"bench-local-{concurrency}", concurrency)
            rates[concurrency] = n / wall * 60
            print(f"local (embedded SmolLM2-135M, {args.local_turns} turns, {args.local_tokens} tokens/reply) "
                  f"concurrency {concurrency}: {n} episodes in {wall:.1f} s = {rates[concurrency]:.1f} episodes/min")
        print(f"batched speed-up: {rates[8] / rates[1]:.1f}x  [aim: at least 3x]")


if __name__ == "__main__":
    main()
