"""`ptom-lab trajectories validate | stats | import FILE`: trajectory files made here or elsewhere."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

from rich.table import Table

from engine.cli.common import console, open_store
from engine.errors import LabError
from engine.trajectories import read_trajectories, summarise


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("trajectories", parents=[common], help="validate, summarise or import trajectory files")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    v = s.add_parser("validate", parents=[common], help="check every line; name each bad one by file:line")
    v.add_argument("file")
    v.set_defaults(func=validate)
    st = s.add_parser("stats", parents=[common], help="outcomes by persuader, personality and condition")
    st.add_argument("file")
    st.add_argument("--skip-bad", action="store_true", help="summarise the good lines of a file with bad ones")
    st.set_defaults(func=stats)
    im = s.add_parser("import", parents=[common], help="store each conversation as a session of kind 'import'")
    im.add_argument("file")
    im.add_argument("--skip-bad", action="store_true", help="import the good lines, count and report the bad")
    im.set_defaults(func=import_file)


def _report_bad(path: str, bad: list[tuple[int, str]], limit: int | None = None) -> None:
    for line, reason in bad[:limit]:
        console.print(f"[red]{path}:{line}[/red]: {reason}", highlight=False)
    if limit is not None and len(bad) > limit:
        console.print(f"... and {len(bad) - limit} more bad line(s)")


def validate(args: argparse.Namespace) -> int:
    reader = read_trajectories(args.file, skip_bad=True)
    for _ in reader:
        pass
    _report_bad(args.file, reader.bad)
    r = reader.report
    verdict = "[green]valid[/green]" if not r.bad else f"[red]{len(r.bad)} bad line(s)[/red]"
    console.print(f"{args.file}: {r.good} conversation(s) ok, {verdict}")
    return 0 if not r.bad else 1


def _read_all(path: str, skip_bad: bool) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """All good conversations; without skip_bad a file with any bad line is refused as a whole."""
    reader = read_trajectories(path, skip_bad=True)
    good = list(reader)
    if reader.bad and not skip_bad:
        _report_bad(path, reader.bad, limit=10)
        raise LabError(
            f"{path}: {len(reader.bad)} bad line(s) (first: line {reader.bad[0][0]}); the file was not used. "
            "Fix them, or pass --skip-bad to use the good lines"
        )
    return good, reader.bad


def stats(args: argparse.Namespace) -> int:
    good, bad = _read_all(args.file, args.skip_bad)
    summary = summarise(good)
    n = summary["conversations"]
    if not n:
        raise LabError(f"{args.file}: no conversations")
    ok = summary["successes"]
    console.print(
        f"{args.file}: {n} conversations, {ok} successes ({ok / n:.0%}), {n - ok} failures, "
        f"{summary['turns'] / n:.1f} turns on average" + (f"; {len(bad)} bad line(s) skipped" if bad else "")
    )
    for group, cells in summary["by"].items():
        table = Table(box=None, header_style="bold", title=f"by {group}")
        for col in (group, "n", "success", "rate"):
            table.add_column(col, justify="left" if col == group else "right")
        for key, (wins, total) in sorted(cells.items()):
            table.add_row(key, str(total), str(wins), f"{wins / total:.0%}")
        console.print(table)
    moves = ", ".join(f"{k} {v}" for k, v in sorted(summary["moves"].items(), key=lambda kv: -kv[1]))
    console.print(f"moves: {moves or 'none'}")
    return 0


def _episode(traj: dict[str, Any], run_id: str, source: str):
    from engine.game import Episode, Outcome, turn_from_dict
    from engine.scenario import Scenario

    o = traj["outcome"]
    target = traj["target"]
    return Episode(
        id=traj["id"],
        scenario=Scenario.from_dict({**traj["scenario"], "check_interesting": False}),
        persuader=traj["persuader"]["name"],
        target=target["kind"],
        personality=target.get("personality") or "",
        condition=traj["condition"],
        seed=int(target.get("seed") or 0),
        kind="import",
        turns=[turn_from_dict(t) for t in traj["turns"]],
        outcome=Outcome(
            choice=o["choice"], success=o["success"], turns=len(traj["turns"]), violations=o.get("violations", 0),
            mental_state_appeals=o.get("mental_state_appeals", 0), parse_failures=o.get("parse_failures", 0),
        ),
        status="finished",
        meta={"run_id": run_id, "source": source},
    )


def import_file(args: argparse.Namespace) -> int:
    good, bad = _read_all(args.file, args.skip_bad)
    store = open_store(args)
    run_id = f"import-{uuid.uuid4().hex[:8]}"
    source = str(Path(args.file).resolve())
    existing = {row[0] for row in store.db.execute("SELECT id FROM sessions")}
    added = skipped = 0
    with store.transaction():  # one file, one transaction: all of it or none of it
        for traj in good:
            if traj["id"] in existing:
                skipped += 1
                continue
            episode = _episode(traj, run_id, source)
            store.start_session(episode)
            for turn in episode.turns:
                store.add_turn(episode.id, turn)
            store.end_session(episode)
            existing.add(traj["id"])
            added += 1
    console.print(f"imported {added} conversation(s) from {args.file} into {store.path} (run id {run_id})")
    if skipped:
        console.print(f"{skipped} conversation(s) already in the store were left as they were")
    if bad:
        console.print(f"[yellow]{len(bad)} bad line(s) skipped:[/yellow]")
        _report_bad(args.file, bad, limit=10)
    return 0
