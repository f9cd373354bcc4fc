"""`ptom-lab scenarios list | show | validate | generate | import-mindgames`."""

from __future__ import annotations

import argparse
import json
import time

from rich.table import Table

from engine.cli.common import add_json_flag, console, print_rows
from engine.errors import LabError
from engine.files import check_writable_folder, write_text
from engine.game.mindgames import SHARED_DIR, import_scenarios, published_file, read_games
from engine.game.rules import initial_choice, winning_disclosures
from engine.game.scenario import ScenarioLibrary, fact_key, load_path, write_jsonl


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("scenarios", parents=[common], help="list, show, validate and generate scenarios")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = s.add_parser("list", help="the scenarios in scenarios/ (and the held-out set with --all)")
    ls.add_argument("--all", action="store_true", help="include the 100 held-out scenarios")
    add_json_flag(ls)
    ls.set_defaults(func=list_scenarios)
    sh = s.add_parser("show", help="one scenario in full, the hidden state included")
    sh.add_argument("id")
    sh.set_defaults(func=show)
    va = s.add_parser("validate", help="check a scenario file or directory")
    va.add_argument("path")
    va.set_defaults(func=validate)
    ge = s.add_parser("generate", help="make interesting scenarios from domain templates (never a held-out one)")
    ge.add_argument("--n", type=int, default=100)
    ge.add_argument("--seed", type=int, default=0)
    ge.add_argument("--out", required=True, help="JSONL file to write")
    ge.add_argument("--proposals", type=int, default=3)
    ge.add_argument("--attributes", type=int, default=3)
    ge.set_defaults(func=generate)
    mg = s.add_parser("import-mindgames", help="convert MindGames' recorded games into a scenario JSONL")
    mg.add_argument("csv", nargs="?", default=str(SHARED_DIR / "games.csv"),
                    help="MindGames' games.csv, stories.json beside it (default: ../shared/mindgames/games.csv)")
    mg.add_argument("--out", required=True, help="JSONL file to write")
    mg.add_argument("--all", action="store_true",
                    help="every distinct recorded game, not only the slots every LLM persuader played")
    mg.add_argument("--no-design", dest="design", action="store_false",
                    help="leave out what MindGames' generator guarantees (told every fact, the target picks a third "
                         "proposal: full_knowledge_best), as MindGames' own persuaders were not told it")
    mg.add_argument("--published", default=None, metavar="FILE",
                    help="also write the published success rates, recomputed from the records, as JSON")
    mg.set_defaults(func=import_mindgames)


def list_scenarios(args: argparse.Namespace) -> int:
    rows = [
        {"id": sid, "title": s.title, "domain": s.domain, "proposals": list(s.proposal_ids), "goal": s.goal,
         "starts_on": initial_choice(s)}
        for sid, s in ScenarioLibrary().all().items() if args.all or not sid.startswith("heldout-")
    ]

    def table(rows: list[dict]) -> Table:
        table = Table("id", "title", "domain", "proposals", "goal", "starts on")
        for r in rows:
            table.add_row(r["id"], r["title"], r["domain"], " ".join(r["proposals"]), r["goal"], r["starts_on"])
        return table

    print_rows(args, ["id", "title", "domain", "proposals", "goal", "starts_on"], rows, table)
    return 0


def show(args: argparse.Namespace) -> int:
    s = ScenarioLibrary().get(args.id)
    console.print(f"[bold]{s.title}[/bold] ({s.id}, {s.domain})\n{s.story}\n")
    table = Table("proposal", *[f"{a.name} ({s.preferences[a.id]:+g})" for a in s.attributes])
    for p in s.proposals:
        cells = []
        for a in s.attributes:
            mark = "*" if (p.id, a.id) in s.target_knows else ""
            cells.append(f"{s.effects[p.id][a.id]:+d}{mark}")
        table.add_row(f"{p.id}: {p.name}" + ("  [goal]" if p.id == s.goal else ""), *cells)
    console.print(table)
    console.print("(*) the target knows this fact at the start; column headers show its preferences.")
    console.print(f"Starts on {initial_choice(s)}. Winning disclosures: "
                  f"{', '.join(sorted(fact_key(f) for f in winning_disclosures(s) - s.target_knows))}")
    return 0


def validate(args: argparse.Namespace) -> int:
    scenarios = load_path(args.path)
    if not scenarios:
        raise LabError(f"{args.path}: no scenarios found (YAML files, or a .jsonl with one a line)")
    ids = [s.id for s in scenarios]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise LabError(f"{args.path}: duplicate scenario id(s): {', '.join(dupes)}")
    console.print(f"[green]ok[/green]: {len(scenarios)} scenario(s) in {args.path}, all valid and winnable")
    return 0


def generate(args: argparse.Namespace) -> int:
    from engine.game.generator import generate as make

    if args.n < 1:
        raise LabError("--n must be at least 1")
    started = time.perf_counter()
    n = write_jsonl(make(args.n, args.seed, n_proposals=args.proposals, n_attributes=args.attributes), args.out)
    console.print(f"wrote {n} interesting scenarios to {args.out} in {time.perf_counter() - started:.2f}s "
                  "(none repeats the held-out set)")
    return 0


def import_mindgames(args: argparse.Namespace) -> int:
    """Both files are checked writable first and each is written whole (a temporary file moved into place)."""
    out = check_writable_folder(args.out, "--out")
    published = check_writable_folder(args.published, "--published") if args.published else None
    n = write_jsonl(import_scenarios(args.csv, every_game=args.all, design=args.design), out)
    what = "distinct games" if args.all else "game slots every MindGames LLM persuader played"
    console.print(f"wrote {n} scenarios ({what}) to {out}", highlight=False)
    if published:
        write_text(published, json.dumps(published_file(read_games(args.csv)), indent=2) + "\n")
        console.print(f"wrote the published success rates to {published}", highlight=False)
    return 0
