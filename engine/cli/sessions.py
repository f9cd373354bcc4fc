"""`ptom-lab sessions list | show | export | archive`."""

from __future__ import annotations

import argparse
import sys

from rich.markdown import Markdown
from rich.table import Table

from engine.cli.common import add_json_flag, console, open_store, print_rows
from engine.files import write_text
from engine.game.transcript import EXPORT_FORMATS, export_text, markdown
from engine.store import session_outcome, session_trajectory


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("sessions", parents=[common], help="browse, show and export stored sessions")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = s.add_parser("list", parents=[common], help="newest sessions first")
    ls.add_argument("--kind", help="play, arena, evaluate, generate, import")
    ls.add_argument("--scenario")
    ls.add_argument("--agent", help="a persuader or target name")
    ls.add_argument("--outcome", choices=["success", "failure"])
    ls.add_argument("--search", help="full-text search over messages and replies")
    ls.add_argument("--archived", action="store_true")
    ls.add_argument("--limit", type=int, default=20)
    add_json_flag(ls)
    ls.set_defaults(func=list_sessions)
    sh = s.add_parser("show", parents=[common], help="a session's transcript")
    sh.add_argument("id", help="session id (a unique prefix will do)")
    sh.set_defaults(func=show)
    ex = s.add_parser("export", parents=[common], help="a session as Markdown or a trajectory JSONL line")
    ex.add_argument("id")
    ex.add_argument("--format", choices=EXPORT_FORMATS, default="md")
    ex.add_argument("--out", help="file to write (default: standard output)")
    ex.set_defaults(func=export)
    ar = s.add_parser("archive", parents=[common], help="hide a session from lists (--undo to restore)")
    ar.add_argument("id")
    ar.add_argument("--undo", action="store_true")
    ar.set_defaults(func=archive)


COLUMNS = ("id", "outcome", "turns", "scenario", "persuader", "target", "personality", "kind", "created_at")


def list_sessions(args: argparse.Namespace) -> int:
    store = open_store(args)
    success = None if args.outcome is None else args.outcome == "success"
    filters = dict(kind=args.kind, scenario=args.scenario, agent=args.agent, success=success,
                   search=args.search, archived=args.archived)
    found = store.list_sessions(**filters, limit=args.limit)
    rows = [
        {"id": r["id"], "outcome": session_outcome(r), "turns": r["n_turns"], "scenario": r["scenario_id"],
         "persuader": r["persuader"], "target": r["target"], "personality": r["personality"], "kind": r["kind"],
         "created_at": r["created_at"]}
        for r in found
    ]
    print_rows(args, list(COLUMNS), rows, _table,
               [f"{len(rows)} of {store.count_sessions(**filters)} session(s) in {store.path}"])
    return 0


def _table(rows: list[dict]) -> Table:
    # Most useful first: on a narrow terminal the columns at the end are the ones that get cut.
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=12)  # never cut: people copy it into `sessions show`
    table.add_column("outcome", no_wrap=True, min_width=7)
    table.add_column("turns", justify="right", no_wrap=True, min_width=5)
    for name in ("scenario", "persuader", "target"):
        table.add_column(name, overflow="ellipsis", no_wrap=True, max_width=24)
    table.add_column("kind", no_wrap=True, overflow="ellipsis")
    table.add_column("when (UTC)", no_wrap=True, overflow="ellipsis")
    for r in rows:
        table.add_row(r["id"], r["outcome"], str(r["turns"]), r["scenario"], r["persuader"],
                      f"{r['target']}/{r['personality']}", r["kind"], r["created_at"][5:16].replace("T", " "))
    return table


def show(args: argparse.Namespace) -> int:
    traj = session_trajectory(open_store(args), args.id)
    console.print(Markdown(markdown(traj)))
    console.print(f"[dim]status: {traj['status']}[/dim]")
    return 0


def export(args: argparse.Namespace) -> int:
    traj = session_trajectory(open_store(args), args.id)
    text = export_text(traj, args.format)
    if args.out:
        write_text(args.out, text)
        console.print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def archive(args: argparse.Namespace) -> int:
    store = open_store(args)
    store.archive(args.id, not args.undo)
    console.print(("restored " if args.undo else "archived ") + store.get_session(args.id)["id"])
    return 0
