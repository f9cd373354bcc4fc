"""`ptom-lab play`: one game, headless, with a readable transcript as it happens."""

from __future__ import annotations

import argparse
import random

from rich.markdown import Markdown
from rich.table import Table

from engine.cli.common import add_json_flag, console, err_console, open_store, positive_int, print_rows
from engine.game.episode import play
from engine.game.interfaces import CONDITIONS, RULE_SETS
from engine.game.record import Episode, Turn
from engine.game.scenario import ScenarioLibrary
from engine.game.transcript import header, outcome_lines, turn_lines
from engine.players.registry import make_persuader, make_target
from engine.players.targets.rational import resolve_personality
from engine.store import StoreListener


class TranscriptPrinter:
    """Prints each turn the moment it ends."""

    def __init__(self, details: bool = True) -> None:
        self.details = details

    def on_start(self, episode: Episode) -> None:
        traj = episode.to_trajectory()
        console.print(Markdown("\n".join(header(traj))))

    def on_turn(self, episode: Episode, turn: Turn) -> None:
        console.print(Markdown("\n".join(turn_lines(turn.model_dump(mode="json"), self.details))))

    def on_end(self, episode: Episode) -> None:
        if episode.status != "finished":
            console.print(f"[red]game {episode.status}: {episode.error}[/red]")
            return
        console.print(Markdown("\n".join(outcome_lines(episode.to_trajectory()))))
        console.print(f"[dim]session {episode.id} saved[/dim]")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("play", parents=[common], help="play one game headless and print the transcript")
    p.add_argument("--scenario", default="business_vacation", help="scenario id or file (FILE#ID for one of many)")
    p.add_argument("--persuader", default="planner", help="persuader spec (see `ptom-lab play --list`)")
    p.add_argument("--human-agent", "--target", dest="target", default="rational", help="simulated human spec")
    p.add_argument("--personality", default="cooperative", help="target personality, or 'mix'")
    p.add_argument("--condition", choices=CONDITIONS, default="hidden")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-turns", type=positive_int, default=None, help="override the scenario's turn limit")
    p.add_argument("--rules", choices=RULE_SETS, default="lab",
                   help="lab, or mindgames: MindGames' protocol (every message played, a lie rejects its message)")
    p.add_argument("--quiet", action="store_true", help="print only the outcome line")
    p.add_argument("--list", action="store_true", help="list the persuaders and simulated humans, then exit")
    add_json_flag(p)
    p.set_defaults(func=run)


def list_players(args: argparse.Namespace) -> int:
    """Every kind each role accepts, with the arguments and options its spec may hold (`engine.players.spec`)."""
    from engine.players.registry import kinds

    rows = [
        {"role": role, "name": name, "argument": "any" if kind.arguments is None else " | ".join(kind.arguments),
         "options": list(kind.options), "help": kind.help}
        for role in ("persuader", "human agent") for name, kind in kinds(role).items()
    ]

    def table(rows: list[dict]) -> Table:
        table = Table("role", "name", "argument", "options", "what", box=None, header_style="bold", pad_edge=False)
        for r in rows:
            table.add_row(r["role"], r["name"], r["argument"], " ".join(r["options"]), r["help"])
        return table

    print_rows(args, ["role", "name", "argument", "options", "help"], rows, table,
               ["spec grammar: KIND[:ARGUMENT][?KEY=VALUE&...], e.g. planner?noise=0.3 or local:models/x?temperature=0"])
    return 0


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    if args.list:
        return list_players(args)
    scenario = ScenarioLibrary().get(args.scenario)
    if args.max_turns:
        scenario = replace(scenario, max_turns=args.max_turns)
    personality = resolve_personality(args.personality, random.Random(args.seed))
    persuader = make_persuader(args.persuader)
    if getattr(persuader, "format_warning", None):  # an LLM persuader asked for a format it was not trained on
        err_console.print(persuader.format_warning, style="yellow", markup=False, highlight=False, soft_wrap=True)
    target = make_target(args.target)
    store = open_store(args)
    listeners = [StoreListener(store)]
    if not args.quiet:
        listeners.append(TranscriptPrinter())
    episode = play(
        scenario, persuader, target, personality=personality, condition=args.condition, seed=args.seed,
        kind="play", listeners=listeners, rules=args.rules,
    )
    if episode.status != "finished":
        if args.quiet:  # without --quiet the transcript printer has said it
            err_console.print(f"game {episode.status}: {episode.error}", markup=False, highlight=False)
        return 1
    if args.quiet and episode.outcome:
        o = episode.outcome
        console.print(f"{episode.id} {'success' if o.success else 'failure'} choice={o.choice} turns={o.turns}")
    return 0
