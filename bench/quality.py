"""How well a trained adapter imitates the planner, per weights dtype: its greedy reply to held-out training prompts
against the planner's reply there.

A quick offline check of an adapter before an evaluation: no games, only the validation rows `prepare` wrote
(scenarios the adapter was not trained on). For each prompt it reports whether the reply parses (free text, no
grammar, so a broken model shows), whether its MOVES equal the planner's (as a set) and whether its first move is of
the planner's kind. Each `--dtypes` entry is a fresh backend; `int8` is PyTorch's dynamic quantisation, `float32`
the CPU default (engine/llm/local.py says why).
Run: .venv/bin/python bench/quality.py --adapter models/ptom-smollm2 --data data/train.val.jsonl [--n 40]
     [--dtypes float32,int8] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the `engine` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from engine.game.moves import parse_reply  # noqa: E402
from engine.llm.base import GenerationOptions  # noqa: E402
from engine.llm.local import LocalBackend  # noqa: E402
from engine.pipeline.training.data import load_rows  # noqa: E402


def moves_of(text: str) -> list[str] | None:
    """The reply's moves as text (disclosures without their effect), or None when it has no readable MOVES line."""
    reply = parse_reply(text, with_message=False)  # the planner's rows and a compact reply alike: MOVES is read
    return [m.text().split("=", 1)[0] for m in reply.moves] if reply.ok else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", required=True, help="an adapter folder made by ptom-lab finetune")
    ap.add_argument("--data", required=True, help="chatml rows from ptom-lab prepare (its .val file)")
    ap.add_argument("--n", type=int, default=40, help="prompts, evenly spread over the file")
    ap.add_argument("--dtypes", default="float32,int8")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = load_rows(args.data, "sft")
    rows = rows[:: max(1, len(rows) // args.n)][: args.n]
    wanted = [moves_of(r["completion"][-1]["content"]) for r in rows]
    print(f"{args.adapter}: {len(rows)} prompts of {args.data}")
    for dtype in filter(None, args.dtypes.split(",")):
        backend = LocalBackend(args.adapter, dtype=dtype)
        started = time.perf_counter()
        replies = backend.chat_batch([r["prompt"] for r in rows], GenerationOptions(max_tokens=48, temperature=0.0))
        got = [moves_of(r.text) for r in replies]
        parsed = sum(g is not None for g in got)
        same = sum(g is not None and w is not None and set(g) == set(w) for g, w in zip(got, wanted, strict=True))
        first = sum(bool(g and w) and g[0].split()[0] == w[0].split()[0] for g, w in zip(got, wanted, strict=True))
        print(f"dtype {dtype}: MOVES parse {parsed}/{len(rows)}, same moves as the planner {same}/{len(rows)}, "
              f"first move of the planner's kind {first}/{len(rows)}  ({time.perf_counter() - started:.0f} s)",
              flush=True)
        bad = next((r.text for r, g in zip(replies, got, strict=True) if g is None), None)
        if bad is not None:
            print(f"  an unreadable reply: {bad[:100]!r}")


if __name__ == "__main__":
    main()
