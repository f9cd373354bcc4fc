"""`ptom-lab play`: one game, headless, with a readable transcript as it happens."""

from __future__ import annotations

import argparse
import random

from rich.markdown import Markdown

from engine.cli.common import console, open_store
from engine.episode import play
from engine.game import CONDITIONS, Episode, Turn
from engine.players import make_persuader, make_target
from engine.scenario import ScenarioLibrary
from engine.store import StoreListener
from engine.targets.rational import resolve_personality
from engine.transcript import header, outcome_lines, turn_lines


class TranscriptPrinter:
    """Prints each turn the moment it ends."""

    def __init__(self, details: bool = True) -> None:
        self.details = details

    def on_start(self, episode: Episode) -> None:
        traj = episode.to_trajectory()
        console.print(Markdown("\n".join(header(traj))))

    def on_turn(self, episode: Episode, turn: Turn) -> None:
        console.print(Markdown("\n".join(turn_lines(turn.to_dict(), self.details))))

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
    p.add_argument("--max-turns", type=int, default=None, help="override the scenario's turn limit")
    p.add_argument("--quiet", action="store_true", help="print only the outcome line")
    p.add_argument("--list", action="store_true", help="list the persuaders and simulated humans, then exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from engine.players import persuader_names, target_names

    if args.list:
        console.print("[bold]Persuaders[/bold]")
        for name, text in persuader_names().items():
            console.print(f"  {name:<22} {text}")
        console.print("[bold]Simulated humans[/bold]")
        for name, text in target_names().items():
            console.print(f"  {name:<22} {text}")
        return 0
    scenario = ScenarioLibrary().get(args.scenario)
    if args.max_turns:
        scenario = replace(scenario, max_turns=args.max_turns)
    personality = resolve_personality(args.personality, random.Random(args.seed))
    persuader = make_persuader(args.persuader)
    target = make_target(args.target)
    store = open_store(args)
    listeners = [StoreListener(store)]
    if not args.quiet:
        listeners.append(TranscriptPrinter())
    episode = play(
        scenario, persuader, target, personality=personality, condition=args.condition, seed=args.seed,
        kind="play", listeners=listeners,
    )
    if args.quiet and episode.outcome:
        o = episode.outcome
        console.print(f"{episode.id} {'success' if o.success else 'failure'} choice={o.choice} turns={o.turns}")
    return 0 if episode.status == "finished" else 1
