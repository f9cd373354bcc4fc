"""Training memory, tokens/s and loss per step for LoRA SFT on the embedded SmolLM2 on this CPU: trl's own loss
(`loss: full`, no activation checkpointing: the trainer before issue 15) against the labels-only loss, without
and with activation checkpointing (`gradient_checkpointing`), LoRA on the last 10 layers only (`lora_layers`:
the backward pass stops at the lowest adapted layer; a different model, so a different loss curve), float32 against
bf16 (`precision`: bf16 base weights, LoRA's in float32, autocast matmuls), and a step's examples in one forward pass
against one at a time (`batch_size` 1, `grad_accum` 4: the same step).

The examples are real: planner games on generated scenarios, turned into chatml rows by data prep, so the
sequence lengths are those of the tutorial (batch 4, up to 1,024 tokens). Each setting trains in its own process,
so its peak resident memory (VmHWM: model, activations, logits, allocator) is its own. Tokens are the non-padding
input tokens the Trainer counted; the first step (warm-up) is left out of the per-step median. The same seed and
data give every setting the same batches, so the loss per step shows whether the curve is the same. On a CPU
shared with other jobs, `--threads 1` is far faster than two spin-waiting threads.
Run: .venv/bin/python bench/train.py [--steps 4] [--batch-size 4] [--threads 1] [--packing] [--settings 9,10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

# Run as a script, this file's folder comes first on sys.path and its name would shadow the `engine` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from engine.game.episode import play  # noqa: E402
from engine.game.generator import generate  # noqa: E402
from engine.jsonl import write_json_lines  # noqa: E402
from engine.pipeline.dataprep import sft_row, turn_examples  # noqa: E402
from engine.pipeline.training import dropout, loop, sft  # noqa: E402
from engine.pipeline.training.config import load_config  # noqa: E402
from engine.players.registry import make_persuader, make_target  # noqa: E402
from engine.store import Store  # noqa: E402


def planner_rows(n_games: int, seed: int) -> list[dict]:
    rows = []
    for i, scenario in enumerate(generate(n_games, seed)):
        episode = play(scenario, make_persuader("planner"), make_target("rational"), seed=seed + i)
        rows += [sft_row(ex, "chatml") for ex in turn_examples(episode)]
    return rows


class Setting(NamedTuple):
    loss: str  # "full" (trl's own) or "labels"
    checkpointing: bool
    layers: int | None  # LoRA on the last N layers (None: all)
    precision: str  # "float32" or "bf16" (bf16 base weights, LoRA's in float32, autocast matmuls)
    one_a_pass: bool  # the step's --batch-size examples one a forward pass (accumulated), or all in one pass


# The trainer before issue 15 first (with glibc's default, growing mmap threshold, as it was then: see
# loop.return_freed_memory); then the labels-only loss without and with activation checkpointing, on every layer
# and on the last 10 only (the tutorial's), in float32 then in bf16 (fast only on a CPU with native bf16),
# each step's examples in one forward pass; then the same step one example a pass (no padding; the saved
# activations of one example): bf16 on every layer and on the last 10, with and without checkpointing; last, the
# defaults on a CPU without native bf16 (float32, one a pass, checkpointed)
SETTINGS = (Setting("full", False, None, "float32", False),
            *[Setting("labels", checkpointing, layers, precision, False) for precision in ("float32", "bf16")
              for layers in (None, 10) for checkpointing in (False, True)],
            *[Setting("labels", checkpointing, layers, "bf16", True) for layers in (None, 10)
              for checkpointing in (False, True)],
            Setting("labels", True, None, "float32", True))


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(data: str, folder: Path, setting: Setting, args: argparse.Namespace) -> dict:
    """One setting's run, in this (fresh) process."""
    if setting == SETTINGS[0]:  # the allocator and LoRA's dropout as they were before issue 15
        loop.return_freed_memory = lambda computes_in: None
        dropout.lean_lora_dropout = lambda model: 0
    tag = "-".join(map(str, setting))
    store = Store(folder / f"bench-{tag}.db")
    cfg = load_config(None, dict(data=data, output=str(folder / tag), max_steps=args.steps, precision=setting.precision,
                                 batch_size=1 if setting.one_a_pass else args.batch_size,
                                 grad_accum=args.batch_size if setting.one_a_pass else 1, max_seq_len=args.max_seq_len,
                                 packing=args.packing, lr=1e-3, loss=setting.loss, lora_layers=setting.layers,
                                 gradient_checkpointing=setting.checkpointing, save_steps=10_000,
                                 cpu_threads=args.threads))
    result = sft.train(cfg, store)
    steps = [s for s in store.training_steps(result["run_id"]) if s["loss"] is not None]
    per_step = [s["tokens_per_s"] for s in steps[1:] if s["tokens_per_s"]]
    m = result["metrics"]
    return {**setting._asdict(), "peak_rss_mb": round(peak_rss_mb()),
            "steps": m["global_step"], "tokens": m["num_input_tokens_seen"], "seconds": round(m["train_runtime"], 1),
            "tokens_per_s_median_after_warmup": round(statistics.median(per_step), 1) if per_step else None,
            "loss_per_step": [round(s["loss"], 4) for s in steps]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4, help="examples a step (default 4: the tutorial's)")
    parser.add_argument("--max-seq-len", type=int, default=1024)
    parser.add_argument("--packing", action="store_true",
                        help="pack the examples (default: one a row, as the tutorial)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--games", type=int, default=12, help="planner games to draw examples from")
    parser.add_argument("--settings", default=None,
                        help="which settings to run, by number (0 is the reference, always run): e.g. 2,6 "
                             f"(default: all {len(SETTINGS)}: "
                             + "; ".join(f"{i} {s}" for i, s in enumerate(SETTINGS)) + ")")
    parser.add_argument("--one", nargs=2, metavar=("DATA", "SETTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child: one setting, one JSON line
        data, index = args.one
        print(json.dumps(measure(data, Path(data).parent, SETTINGS[int(index)], args)), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        rows = planner_rows(args.games, seed=7)
        write_json_lines(data, rows)
        print(f"{len(rows)} examples from {args.games} planner games; batch {args.batch_size}, max_seq_len "
              f"{args.max_seq_len}, packing {args.packing}, {args.steps} steps")
        results = []
        chosen = sorted({0, *(int(i) for i in args.settings.split(","))}) if args.settings else range(len(SETTINGS))
        for index in chosen:
            child = [sys.executable, __file__, "--one", str(data), str(index)]
            child += [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                      if k in ("steps", "batch_size", "max_seq_len", "threads") and v is not None]
            child += ["--packing"] if args.packing else []
            out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
        before = results[0]
        for after in results[1:]:
            speed = after["tokens_per_s_median_after_warmup"] / before["tokens_per_s_median_after_warmup"]
            a_pass = 1 if after["one_a_pass"] else args.batch_size
            print(f"loss {after['loss']}, checkpointing {after['checkpointing']}, LoRA layers "
                  f"{after['layers'] or 'all'}, {after['precision']}, {a_pass} a pass vs the trainer before issue 15: "
                  f"peak memory {before['peak_rss_mb']} -> {after['peak_rss_mb']} MB, tokens/s x{speed:.2f}  "
                  "[aims: under 2,000 MB, at least x1.5]")


if __name__ == "__main__":
    main()
