"""`ptom-lab trajectories validate | stats | import FILE | schema`: trajectory files made here or elsewhere."""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table

from engine.cli.common import add_json_flag, console, open_store, print_rows
from engine.errors import LabError
from engine.game.record import Episode, json_schema_text
from engine.pipeline.trajectories import read_trajectories, summarise


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("trajectories", parents=[common], help="validate, summarise or import trajectory files")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    v = s.add_parser("validate", parents=[common], help="check every line; name each bad one by file:line")
    v.add_argument("file")
    v.set_defaults(func=validate)
    st = s.add_parser("stats", parents=[common], help="outcomes by persuader, personality and condition")
    st.add_argument("file")
    st.add_argument("--skip-bad", action="store_true", help="summarise the good lines of a file with bad ones")
    add_json_flag(st)
    st.set_defaults(func=stats)
    im = s.add_parser("import", parents=[common], help="store each conversation as a session of kind 'import'")
    im.add_argument("file")
    im.add_argument("--skip-bad", action="store_true", help="import the good lines, count and report the bad")
    im.set_defaults(func=import_file)
    sc = s.add_parser("schema", parents=[common], help="print the trajectory line's JSON Schema (docs/trajectory.schema.json)")
    sc.set_defaults(func=schema)


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


def _read_all(path: str, skip_bad: bool) -> tuple[list[Episode], list[tuple[int, str]]]:
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
    n = summary["n"]
    if not n:
        raise LabError(f"{args.file}: no conversations")
    ok = summary["successes"]
    rows = [{"by": "all", "value": "all", "n": n, "successes": ok, "rate": summary["rate"]}] + [
        {"by": group, "value": key, "n": cell["n"], "successes": cell["successes"], "rate": cell["rate"]}
        for group, cells in summary["by"].items() for key, cell in cells.items()
    ]
    moves = ", ".join(f"{k} {v}" for k, v in sorted(summary["moves"].items(), key=lambda kv: -kv[1]))
    notes = [
        f"{args.file}: {n} conversations, {ok} successes ({ok / n:.0%}), {n - ok} failures, "
        f"{summary['turns'] / n:.1f} turns on average" + (f"; {len(bad)} bad line(s) skipped" if bad else ""),
        f"moves: {moves or 'none'}",
    ]
    print_rows(args, ["by", "value", "n", "successes", "rate"], rows, _stats_tables, notes)
    return 0


def _stats_tables(rows: list[dict[str, Any]]) -> Group:
    """One small table per grouping (persuader, personality, condition)."""
    tables = []
    for group in dict.fromkeys(r["by"] for r in rows if r["by"] != "all"):
        table = Table(box=None, header_style="bold", title=f"by {group}")
        for col in (group, "n", "success", "rate"):
            table.add_column(col, justify="left" if col == group else "right")
        for r in rows:
            if r["by"] == group:
                table.add_row(r["value"], str(r["n"]), str(r["successes"]), f"{r['rate']:.0%}")
        tables.append(table)
    return Group(*tables)


IMPORT_BATCH = 200  # conversations a transaction: other writers wait a fraction of a second at most


def import_file(args: argparse.Namespace) -> int:
    good, bad = _read_all(args.file, args.skip_bad)
    store = open_store(args)
    run_id = f"import-{uuid.uuid4().hex[:8]}"
    source = str(Path(args.file).resolve())
    existing = store.session_ids()
    added = skipped = 0
    store.ensure_run(run_id, "import")
    # A transaction per batch, not per file: a 20,000-conversation file held the store for 33 s and other writers
    # gave up. A failed import leaves whole batches; importing the file again adds only what is missing.
    for start in range(0, len(good), IMPORT_BATCH):
        with store.transaction():
            for episode in good[start:start + IMPORT_BATCH]:
                if episode.id in existing:
                    skipped += 1
                    continue
                episode.kind, episode.meta = "import", {"run_id": run_id, "source": source}
                store.start_session(episode)
                for turn in episode.turns:
                    store.add_turn(episode.id, turn)
                store.end_session(episode)
                existing.add(episode.id)
                added += 1
    console.print(f"imported {added} conversation(s) from {args.file} into {store.path} (run id {run_id})")
    if skipped:
        console.print(f"{skipped} conversation(s) already in the store were left as they were")
    if bad:
        console.print(f"[yellow]{len(bad)} bad line(s) skipped:[/yellow]")
        _report_bad(args.file, bad, limit=10)
    return 0


def schema(args: argparse.Namespace) -> int:
    """The schema goes to stdout as plain JSON (no console markup), so it can be piped or saved."""
    sys.stdout.write(json_schema_text())
    return 0
