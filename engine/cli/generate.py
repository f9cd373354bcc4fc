"""`ptom-lab generate`: training conversations from a rule-based persuader, one trajectory a line."""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid

from rich.table import Table

from engine.cli.common import console, open_store, positive_int, progress
from engine.errors import LabError
from engine.files import atomic_write, check_writable_folder
from engine.game.interfaces import CONDITIONS, RULE_SETS
from engine.pipeline.metrics import outcome_summary
from engine.pipeline.trajectories import BatchStoreWriter, GenerationPlan, generate_trajectories, parse_mix
from engine.players.spec import parse

EPILOG = """\
persuader specs: planner | planner?noise=0.3 (a random non-best move 30% of turns) | planner:weak (noise 0.35,
never asks) | planner?asks=1&per=2 | greedy | reveal-all | random.
Mixing outcomes: --noise 0.2 adds noise to planner specs; --mix planner@0.6 planner?noise=0.4@0.3 planner:weak@0.1
draws a spec per conversation; --repeats 3 plays each scenario three times against the same target seed with
different persuader noise draws (repeats 2..K get noise --repeat-noise when none is set).
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "generate", parents=[common], help="generate training trajectories (JSONL, one conversation a line)",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--n", type=positive_int, default=2000, help="conversations to generate (default 2000)")
    p.add_argument("--persuader", default="planner", help="persuader spec (default planner)")
    p.add_argument("--mix", nargs="+", metavar="SPEC@WEIGHT", help="draw the persuader spec per conversation")
    p.add_argument("--noise", type=float, default=None, help="planner noise 0..1 for specs that set none")
    p.add_argument("--repeats", type=positive_int, default=1, help="play each scenario K times (same target, new noise)")
    p.add_argument("--repeat-noise", type=float, default=0.3, help="planner noise for repeats 2..K (default 0.3)")
    p.add_argument("--personality", default="mix", help="target personality, or 'mix' (default)")
    p.add_argument("--human-agent", "--target", dest="target", default="rational", help="simulated human spec")
    p.add_argument("--condition", choices=CONDITIONS, default="hidden")
    p.add_argument("--rules", choices=RULE_SETS, default="lab",
                   help="lab, or mindgames: MindGames' protocol (every message played, a lie rejects its message)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scenarios", help="scenario file to cycle through (default: fresh generated scenarios)")
    p.add_argument("--allow-heldout", action="store_true", help="allow held-out scenarios in --scenarios")
    p.add_argument("--out", default="trajectories.jsonl", help="output JSONL (default trajectories.jsonl)")
    p.add_argument("--no-store", action="store_true", help="do not log the sessions to the store")
    p.add_argument("--workers", type=positive_int, default=None, help="processes (default: every core, rule-based targets)")
    p.set_defaults(func=run)


def _scenarios(path: str | None, allow_heldout: bool):
    if path is None:
        return None
    from engine.game.generator import heldout_signatures, signature
    from engine.game.scenario import load_path

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
    if args.noise is not None and not 0 <= args.noise <= 1:
        raise LabError(f"--noise must be from 0 to 1, got {args.noise}")
    plan = GenerationPlan(
        n=args.n, seed=args.seed, persuaders=parse_mix(args.mix) if args.mix else [(args.persuader, 1.0)],
        personality=args.personality, condition=args.condition, target=args.target, repeats=args.repeats,
        noise=args.noise, repeat_noise=args.repeat_noise, scenarios=_scenarios(args.scenarios, args.allow_heldout),
        rules=args.rules,
    )
    run_id = f"generate-{args.seed}-{uuid.uuid4().hex[:8]}"
    out = check_writable_folder(args.out, "--out")
    listeners = []
    if not args.no_store:
        store = open_store(args)
        store.check_writable()  # a read-only store fails here, before the first game, not at its end
        listeners.append(BatchStoreWriter(store))
    workers = args.workers or ((os.cpu_count() or 1) if args.target == "rational" else 1)
    outcomes: list[tuple[bool, dict[str, str]]] = []
    errored, turns, started, first_error = 0, 0, time.perf_counter(), ""
    episodes = generate_trajectories(plan, listeners, {"run_id": run_id}, workers)  # checks the plan and keys first
    # Written beside --out and moved into place at the end: a run that fails or is interrupted leaves it as it was.
    with atomic_write(out) as fh, progress() as bar:
        task = bar.add_task("generating", total=plan.n)
        for episode in episodes:
            bar.advance(task)
            if episode.status != "finished" or episode.outcome is None:
                errored += 1
                first_error = first_error or episode.error or episode.status
                continue
            fh.write(json.dumps(episode.to_trajectory(timing=False), ensure_ascii=False) + "\n")
            turns += episode.outcome.turns
            spec = parse(episode.persuader.name).without("salt")  # repeats differ only in their noise draws
            outcomes.append((episode.outcome.success, {"persuader": str(spec), "personality": episode.target.personality}))
        if not outcomes:  # raised inside the block, so --out keeps what it held
            raise LabError(f"all {errored} conversation(s) errored (first: {first_error}); {out} was left as it was")
    elapsed = time.perf_counter() - started
    _summary(outcome_summary(outcomes), errored, turns, elapsed, out, run_id, args.no_store)
    return 0


def _summary(summary: dict, errored, turns, elapsed, out, run_id, no_store) -> None:
    """The `metrics.outcome_summary` of the conversations written: overall, by persuader and by personality."""
    table = Table(title="generated conversations", box=None, header_style="bold")
    for col in ("group", "n", "success", "failure", "rate"):
        table.add_column(col, justify="left" if col == "group" else "right")
    cells = [("all", summary)] + sorted(
        ((f"{group} {value}", cell) for group, by in summary["by"].items() for value, cell in by.items()),
        key=lambda row: row[0],
    )
    for key, cell in cells:
        table.add_row(key, str(cell["n"]), str(cell["successes"]), str(cell["failures"]), f"{cell['rate']:.0%}")
    console.print(table)
    n = summary["n"]
    pace = n / elapsed * 60 if elapsed else 0.0
    console.print(
        f"{n} conversations ({summary['successes']} successes, {summary['failures']} failures; "
        f"{turns / max(n, 1):.1f} turns on average) in {elapsed:.1f} s ({pace:,.0f}/min) -> {out}"
    )
    if errored:
        console.print(f"[yellow]{errored} conversation(s) errored and were left out of {out}[/yellow]")
    if not no_store:
        console.print(f"[dim]logged as sessions of kind 'generate', run id {run_id}[/dim]")
