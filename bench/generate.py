"""Generation speed of the embedded model on the CPU: an Arena turn, tokens/s at batch 1 and batch 8, and load time.

Aims (issue 5): batch 8 at least 3x the throughput of batch 1; a cached load under 5 s. Issue 15: an Arena turn
of the embedded model under 5 s.
- Arena turn: what a user waits for in the Arena, one persuader turn of `local?reply=compact` and of
  `local?reply=moves` (the reply decoded under the turn's grammar; `--arena-replies`) against the rational target,
  at turns 1-3 of three held-out games; each dtype listed in `--arena-dtypes` is a fresh backend (turns 2 and 3
  read only their new tokens: engine/llm/prefix_cache.py);
- cold load: a new process with PTOM_CACHE pointing at an empty temp folder, so the GGUF is converted first;
- cached load: a new process reading the converted folder (the default cache);
- throughput: real persuader prompts (the shared prompt builder on held-out scenarios), greedy, fixed length;
  batch 1 runs the prompts one by one, batch 8 in one generate call, and "8 threads" sends them from 8 threads
  through the backend's batcher, the way concurrent evaluation games do.
- prompt: prompt tokens read per second, batch 8 with one new token, every prompt read whole (the throughput runs
  keep no prefix cache); run it with --dtype bfloat16 to compare on CPUs with AVX512-BF16.
- llama.cpp (`--llama-cpp q4_1,q8_0,f16`, needs `./setup.sh --llama-cpp`): on the same 8 prompts, each read whole,
  prompt tokens read per second and tokens written per second at batch 1, for each way llama.cpp can hold the
  embedded weights (engine/llm/llamacpp.py: `base_gguf`); `--arena-engines transformers,llama.cpp` times the
  Arena turn on both engines.
Run: .venv/bin/python bench/generate.py [--tokens 48] [--threads N] [--skip-cold] [--dtype auto|float32|bfloat16]
     [--turn K] [--verbose N]   (prompts at turn K with each past message repeated N times)
     [--llama-cpp q4_1,q8_0,f16] [--arena-engines transformers,llama.cpp] [--skip-transformers]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the `engine` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

HELDOUT = Path(__file__).resolve().parent.parent / "scenarios" / "heldout.jsonl"
LOAD_SNIPPET = (
    "import time, torch, transformers; from engine.llm.local import LocalBackend; t = time.perf_counter(); "
    "b = LocalBackend(''); print(f'{time.perf_counter() - t:.2f}')"
)


def timed_load(cache: str | None) -> float:
    """Seconds to build a LocalBackend in a fresh process (imports excluded), with PTOM_CACHE set if given."""
    env = dict(os.environ)
    if cache is not None:
        env["PTOM_CACHE"] = cache
    out = subprocess.run([sys.executable, "-c", LOAD_SNIPPET], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def prompts(n: int, turn: int = 1, verbose: int = 1) -> list[list[dict[str, str]]]:
    """Persuader prompts at `turn`: the dialogue so far is a random persuader's game against a stubborn target.

    `verbose` repeats each past message that many times: a language model's messages are several times longer
    than the random persuader's, so its prompts in later turns are too.
    """
    from engine.game.episode import play
    from engine.game.interfaces import persuader_side
    from engine.game.scenario import load_file
    from engine.players.prompts import history_from_turns, persuader_messages
    from engine.players.registry import make_persuader, make_target

    out = []
    for i, s in enumerate(load_file(HELDOUT)[:n]):
        turns = []
        if turn > 1:
            game = play(s, make_persuader("random"), make_target("rational"), personality="stubborn", seed=i)
            turns = game.turns[: turn - 1]
        turns = [t.model_copy(update={"message": " ".join([t.message] * verbose)}) for t in turns]
        out.append(persuader_messages(persuader_side(s), len(turns) + 1, history_from_turns(turns)))
    return out


def arena_turns(dtype: str, reply: str, engine: str = "transformers", games: int = 3, turns: int = 3) -> None:
    """Seconds per persuader turn of the embedded model (reply format `reply`, grammar) in real games, as the Arena
    plays."""
    import dataclasses
    import statistics

    from engine.game.episode import play
    from engine.game.scenario import load_file
    from engine.players.registry import make_persuader, make_target

    how = f"dtype={dtype}&engine=transformers" if engine == "transformers" else f"engine={engine}"
    spec = f"local?reply={reply}&temperature=0&{how}"
    make_persuader(spec)  # the first player loads the shared model, outside the timings
    seconds, tokens, parsed = [], [], 0
    for i, scenario in enumerate(load_file(HELDOUT)[:games]):
        game = play(dataclasses.replace(scenario, max_turns=turns), make_persuader(spec), make_target("rational"),
                    seed=i)
        for t in game.turns:
            seconds.append(t.latency_ms / 1000)
            tokens.append(t.usage["output_tokens"] if t.usage else 0)
            parsed += t.parse_ok
    print(f"Arena turn, embedded model on {engine}, {spec}: median {statistics.median(seconds):.1f} s, "
          f"max {max(seconds):.1f} s over {len(seconds)} turns ({statistics.mean(tokens):.0f} new tokens a turn, "
          f"{parsed}/{len(seconds)} parsed)  [aim: under 5 s]", flush=True)


def llama_cpp_rates(weights: str, convs: list[list[dict[str, str]]], tokens: int) -> None:
    """Prompt tokens read per second and tokens written per second at batch 1 on llama.cpp, with `weights`."""
    from engine.llm.embedded import embedded_model_dir
    from engine.llm.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend("embedded", str(embedded_model_dir()), weights=weights, state_budget=0)
    llama = backend.llama
    rows = [backend.tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=True)
            ["input_ids"] for c in convs]
    backend.prefix_cache.read(llama, rows[0])  # warm-up
    read_s = write_s = 0.0
    for ids in rows:
        llama.n_tokens = 0  # each prompt read whole
        started = time.perf_counter()
        backend.prefix_cache.read(llama, list(ids))
        read_s += time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(tokens):  # one token at a time, as a reply is written (the token's value does not matter)
            llama.eval([ids[-1]])
        write_s += time.perf_counter() - started
    read = sum(len(ids) for ids in rows)
    print(f"llama.cpp, {weights} weights, {llama.n_threads} threads: prompts of ~{read / len(rows):.0f} tokens read "
          f"at {read / read_s:6.1f} tokens/s; batch 1 writes {tokens * len(rows) / write_s:6.1f} tokens/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=48, help="new tokens per reply")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold (GGUF conversion) load")
    parser.add_argument("--dtype", default="auto", help="weights' dtype for the throughput runs (a LocalBackend dtype)")
    parser.add_argument("--turn", type=int, default=1, help="prompts at this turn of a game (longer with each turn)")
    parser.add_argument("--verbose", type=int, default=1, help="repeat each past message N times (longer prompts)")
    parser.add_argument("--arena-dtypes", default="int8,float32", help="dtypes for the Arena turn ('' to skip)")
    parser.add_argument("--arena-replies", default="compact,moves", help="reply formats for the Arena turn")
    parser.add_argument("--arena-engines", default="transformers", help="engines for the Arena turn")
    parser.add_argument("--llama-cpp", default="", help="llama.cpp weights to time (q4_1,q8_0,f16; '' to skip)")
    parser.add_argument("--skip-transformers", action="store_true", help="skip the transformers throughput runs")
    args = parser.parse_args()

    if not args.skip_cold:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"cold load (GGUF conversion + load): {timed_load(tmp):.1f} s")
    print(f"cached load (new process):          {timed_load(None):.1f} s")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    for reply in filter(None, args.arena_replies.split(",")):
        for engine in filter(None, args.arena_engines.split(",")):
            for dtype in filter(None, args.arena_dtypes.split(",")) if engine == "transformers" else ["-"]:
                arena_turns(dtype, reply, engine)
    convs = prompts(8, args.turn, args.verbose)
    for weights in filter(None, args.llama_cpp.split(",")):
        llama_cpp_rates(weights, convs, args.tokens)
    if args.skip_transformers:
        return

    from engine.llm.base import GenerationOptions
    from engine.llm.local import LocalBackend

    backend = LocalBackend("", max_batch=8, wait_s=0.05, dtype=args.dtype)
    backend.prefix_cache.budget_bytes = 0  # the same prompts run again and again here: read each whole
    # every row runs the full length: throughput is then tokens generated per second of wall time
    backend.net.generation_config.eos_token_id = None
    options = GenerationOptions(max_tokens=args.tokens, temperature=0.0)
    for size in (1, len(convs)):  # warm-up at both measured batch sizes (on CUDA the first batch-8 call pays set-up)
        backend.chat_batch(convs[:size], GenerationOptions(max_tokens=4, temperature=0.0))

    def rate(run) -> float:
        started = time.perf_counter()
        results = run()
        return sum(r.output_tokens for r in results) / (time.perf_counter() - started)

    one = rate(lambda: [r for c in convs[:4] for r in backend.chat_batch([c], options)])
    eight = rate(lambda: backend.chat_batch(convs, options))
    results: list = []

    def game(c) -> None:
        results.append(backend.chat(c, options))

    def threaded():
        threads = [threading.Thread(target=game, args=(c,)) for c in convs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    threaded_rate = rate(threaded)
    started = time.perf_counter()
    read = sum(r.input_tokens for r in backend.chat_batch(convs, GenerationOptions(max_tokens=1)))
    prompt_rate = read / (time.perf_counter() - started)
    print(f"torch threads {torch.get_num_threads()}, {args.dtype} ({backend.dtype}), "
          f"{args.tokens} new tokens, prompts of ~{read / len(convs):.0f} tokens")
    print(f"prompt, batch 8:      {prompt_rate:6.1f} tokens/s read")
    print(f"batch 1:              {one:6.1f} tokens/s")
    print(f"batch 8:              {eight:6.1f} tokens/s  ({eight / one:.1f}x batch 1; aim >= 3x)")
    print(f"8 threads, batcher:   {threaded_rate:6.1f} tokens/s  (batches of {backend.batcher.batch_sizes})")


if __name__ == "__main__":
    main()
