"""`ptom-lab generate`: training conversations from a rule-based persuader, one trajectory a line."""

from __future__ import annotations

import argparse
import json
import os
import re
import time
import uuid
from pathlib import Path

from rich.table import Table

from engine.cli.common import console, open_store, progress
from engine.errors import LabError
from engine.game import CONDITIONS
from engine.trajectories import BatchStoreWriter, GenerationPlan, generate_trajectories, parse_mix

EPILOG = """\
persuader specs: planner | planner:noise=0.3 (a random non-best move 30% of turns) | planner:weak (noise 0.35,
never asks) | planner:asks=1,per=2 | greedy | reveal-all | random.
Mixing outcomes: --noise 0.2 adds noise to planner specs; --mix planner@0.6 planner:noise=0.4@0.3 planner:weak@0.1
draws a spec per conversation; --repeats 3 plays each scenario three times against the same target seed with
different persuader noise draws (repeats 2..K get noise --repeat-noise when none is set).
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "generate", parents=[common], help="generate training trajectories (JSONL, one conversation a line)",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--n", type=int, default=2000, help="conversations to generate (default 2000)")
    p.add_argument("--persuader", default="planner", help="persuader spec (default planner)")
    p.add_argument("--mix", nargs="+", metavar="SPEC@WEIGHT", help="draw the persuader spec per conversation")
    p.add_argument("--noise", type=float, default=None, help="planner noise 0..1 for specs that set none")
    p.add_argument("--repeats", type=int, default=1, help="play each scenario K times (same target, new noise)")
    p.add_argument("--repeat-noise", type=float, default=0.3, help="planner noise for repeats 2..K (default 0.3)")
    p.add_argument("--personality", default="mix", help="target personality, or 'mix' (default)")
    p.add_argument("--human-agent", "--target", dest="target", default="rational", help="simulated human spec")
    p.add_argument("--condition", choices=CONDITIONS, default="hidden")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scenarios", help="scenario file to cycle through (default: fresh generated scenarios)")
    p.add_argument("--allow-heldout", action="store_true", help="allow held-out scenarios in --scenarios")
    p.add_argument("--out", default="trajectories.jsonl", help="output JSONL (default trajectories.jsonl)")
    p.add_argument("--no-store", action="store_true", help="do not log the sessions to the store")
    p.add_argument("--workers", type=int, default=None, help="processes (default: every core, rule-based targets)")
    p.set_defaults(func=run)


def _scenarios(path: str | None, allow_heldout: bool):
    if path is None:
        return None
    from engine.generator import heldout_signatures, signature
    from engine.scenario import load_path

    scenarios = load_path(path)
    if not allow_heldout:
        held = heldout_signatures()
        bad = [s.id for s in scenarios if signature(s) in held]
        if bad:
            raise LabError(
                f"{path}: {len(bad)} scenario(s) are in the held-out set (e.g. {bad[0]}); training on them would "
                "leak evaluation data (pass --allow-heldout to do it anyway)"
            )
    return scenarios


def run(args: argparse.Namespace) -> int:
    if args.n < 1 or args.repeats < 1:
        raise LabError(f"--n and --repeats must be at least 1, got {args.n} and {args.repeats}")
    if args.noise is not None and not 0 <= args.noise <= 1:
        raise LabError(f"--noise must be from 0 to 1, got {args.noise}")
    plan = GenerationPlan(
        n=args.n, seed=args.seed, persuaders=parse_mix(args.mix) if args.mix else [(args.persuader, 1.0)],
        personality=args.personality, condition=args.condition, target=args.target, repeats=args.repeats,
        noise=args.noise, repeat_noise=args.repeat_noise, scenarios=_scenarios(args.scenarios, args.allow_heldout),
    )
    run_id = f"generate-{args.seed}-{uuid.uuid4().hex[:8]}"
    listeners = [] if args.no_store else [BatchStoreWriter(open_store(args))]
    workers = args.workers or ((os.cpu_count() or 1) if args.target == "rational" else 1)
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise LabError(f"--out {out}: the folder {out.parent} does not exist")
    stats: dict[str, list[int]] = {}
    errored, turns, started = 0, 0, time.perf_counter()
    episodes = generate_trajectories(plan, listeners, {"run_id": run_id}, workers)  # checks the plan first
    with open(out, "w", encoding="utf-8") as fh, progress() as bar:
        task = bar.add_task("generating", total=plan.n)
        for episode in episodes:
            bar.advance(task)
            if episode.status != "finished" or episode.outcome is None:
                errored += 1
                continue
            fh.write(json.dumps(episode.to_trajectory(), ensure_ascii=False) + "\n")
            turns += episode.outcome.turns
            spec = re.sub(r"[,:]?salt=\d+", "", episode.persuader)  # repeats differ only in their noise draws
            for key in ("all", f"persuader {spec}", f"personality {episode.personality}"):
                cell = stats.setdefault(key, [0, 0])
                cell[0] += episode.outcome.success
                cell[1] += 1
    elapsed = time.perf_counter() - started
    _summary(stats, errored, turns, elapsed, out, run_id, args.no_store)
    return 0 if stats else 1


def _summary(stats, errored, turns, elapsed, out, run_id, no_store) -> None:
    done = stats.get("all", [0, 0])
    table = Table(title="generated conversations", box=None, header_style="bold")
    for col in ("group", "n", "success", "failure", "rate"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for key, (ok, n) in sorted(stats.items(), key=lambda kv: (kv[0] != "all", kv[0])):
        table.add_row(key, str(n), str(ok), str(n - ok), f"{ok / n:.0%}")
    console.print(table)
    rate = done[1] / elapsed * 60 if elapsed else 0.0
    console.print(
        f"{done[1]} conversations ({done[0]} successes, {done[1] - done[0]} failures; "
        f"{turns / max(done[1], 1):.1f} turns on average) in {elapsed:.1f} s ({rate:,.0f}/min) -> {out}"
    )
    if errored:
        console.print(f"[yellow]{errored} conversation(s) errored and were left out of {out}[/yellow]")
    if not no_store:
        console.print(f"[dim]logged as sessions of kind 'generate', run id {run_id}[/dim]")
