"""`ptom-lab prepare`: trajectories to training files, split by scenario, with a summary and a store record.

    ptom-lab prepare --input trajectories.jsonl --output training_data.jsonl --format chatml --val 0.1
    ptom-lab prepare check-openai training_data.jsonl      # the fine-tuning API's rules, every breach by line
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from engine.cli.common import console, open_store, positive_int
from engine.errors import LabError
from engine.files import check_writable_folder
from engine.llm import pricing
from engine.pipeline.dataprep import FORMATS
from engine.players.reply_schema import REPLY_FORMATS


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "prepare", parents=[common], help="trajectories to training files (chatml, sharegpt, openai, kto, dpo)",
        description="Turn a trajectory file into training examples (one per persuader turn), split by scenario. "
        "Writes OUTPUT (train), OUTPUT.val.jsonl and OUTPUT.test.jsonl, prints a summary and records each file "
        "in the store. `ptom-lab prepare check-openai FILE` checks a chat file against the OpenAI fine-tuning rules.",
    )
    p.add_argument("--input", "-i", help="trajectory JSONL file (DESIGN.md 2)")
    p.add_argument("--output", "-o", help="training file to write (the train split; others get .val/.test)")
    p.add_argument("--format", "-f", choices=FORMATS, default="chatml",
                   help="chatml (messages + meta), sharegpt, openai (messages only), kto (labelled), dpo (pairs)")
    p.add_argument("--val", type=float, default=0.0, help="fraction of scenarios held out for validation (e.g. 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation draw")
    p.add_argument("--test-scenarios", metavar="FILE",
                   help="held-out scenarios (YAML/JSON/JSONL, or .txt ids): their conversations go to the test file only")
    p.add_argument("--max-tokens", type=positive_int, help="report examples longer than this (they are kept, not cut)")
    p.add_argument("--skip-bad", action="store_true", help="skip and count malformed lines instead of stopping")
    p.add_argument("--model", default="", help="model to be trained, for its tokenizer (default: the embedded SmolLM2)")
    p.add_argument("--self-belief", action="store_true", help="the model writes its own BELIEF section (no tracker)")
    p.add_argument("--reply-format", choices=REPLY_FORMATS, default="full",
                   help="full: REASONING, COUNTERFACTUAL, MOVES, MESSAGE; compact: MOVES and a short MESSAGE; "
                        "moves: MOVES alone, the message rendered from them (a finetuned adapter records it)")
    p.add_argument("--only-successful", action="store_true", help="keep only turns of successful conversations")
    p.add_argument("--epochs", type=positive_int, help="epochs for the OpenAI cost estimate (default: what n_epochs auto picks)")
    p.add_argument("--openai-model", choices=list(pricing.PRICES), default=pricing.DEFAULT_MODEL, metavar="MODEL",
                   help=f"OpenAI model priced in the cost estimate: {', '.join(pricing.PRICES)} (default %(default)s)")
    p.set_defaults(func=run)
    checks = p.add_subparsers(dest="prepare_command", metavar="[check-openai FILE]")
    c = checks.add_parser("check-openai", parents=[common], help="check a chat JSONL file against the OpenAI fine-tuning rules")
    c.add_argument("file", help="chat JSONL file ({\"messages\": [...]} a line)")
    c.add_argument("--openai-model", choices=list(pricing.PRICES), default=pricing.DEFAULT_MODEL, metavar="MODEL",
                   help=f"model whose per-example token limit applies: {', '.join(pricing.PRICES)} (default %(default)s)")
    c.add_argument("--model", default="", help="tokenizer for counting tokens (default: the embedded SmolLM2)")
    c.set_defaults(func=run_check)


def run(args: argparse.Namespace) -> int:
    from engine.pipeline.dataprep import PrepareOptions, prepare, record_dataset

    if not args.input or not args.output:
        raise LabError("prepare needs --input TRAJECTORIES.jsonl and --output TRAINING.jsonl (or: prepare check-openai FILE)")
    check_writable_folder(args.output, "--output")  # a mistyped folder fails now, not after the whole read
    store = open_store(args)
    store.check_writable()  # so does a read-only store, which the files are recorded in at the end
    opts = PrepareOptions(
        input=args.input, output=args.output, format=args.format, val=args.val, seed=args.seed,
        test_scenarios=args.test_scenarios, max_tokens=args.max_tokens, skip_bad=args.skip_bad,
        model=args.model or None, self_belief=args.self_belief, reply_format=args.reply_format,
        only_successful=args.only_successful,
        epochs=args.epochs, price_model=args.openai_model,
    )
    with console.status("reading, formatting and counting tokens"):
        prepared = prepare(opts)
    ids = record_dataset(store, prepared, args.format)
    print_summary(prepared.summary)
    console.print(f"[dim]recorded in the store ({store.path}) as dataset {', '.join(ids)}[/dim]", soft_wrap=True)
    return 0


def print_summary(summary: dict[str, Any], out: Console = console) -> None:
    """The summary of one `prepare` run as rich tables, on `out`: the terminal here, bench/prepare.py, and the TUI's
    Data pane (a recording console) show the same tables."""
    fmt = summary["format"]
    out.print(f"[bold]{fmt}[/bold] from {summary['source']}", highlight=False, soft_wrap=True)
    extra = {"kto": ("desirable", "desirable"), "dpo": ("states", "dpo_states")}.get(fmt)
    columns = ["split", "conversations", "success", "pairs" if fmt == "dpo" else "examples"]
    columns += [extra[0]] if extra else []
    table = Table()
    for col in [*columns, "tokens", "longest"]:
        table.add_column(col, justify="left" if col == "split" else "right")
    for split, s in summary["splits"].items():
        cells = [split, f"{s['conversations']:,}", f"{s['success_ratio']:.1%}" if s["conversations"] else "-",
                 f"{s['examples']:,}"]
        cells += [f"{s[extra[1]]:,}"] if extra else []
        table.add_row(*cells, f"{s['tokens']:,}", f"{s['max_example_tokens']:,}")
    out.print(table)
    for split, s in summary["splits"].items():
        if s["file"]:
            out.print(f"{split:<5} -> {s['file']}", highlight=False, soft_wrap=True)
    out.print(f"tokens counted with the tokenizer of {summary['tokenizer']}")
    if summary.get("reply_format", "full") != "full":  # the spec must say so at play time
        out.print(f"reply format {summary['reply_format']}: an adapter finetuned on it plays it unasked "
                  f"(another model needs ?reply={summary['reply_format']})")
    for reason, n in summary["skipped"].items():
        out.print(f"skipped {n:,} turns: {reason}")
    bad = summary["bad_lines"]
    if bad:
        out.print(f"[yellow]skipped {len(bad):,} bad lines (--skip-bad):[/yellow]")
        for b in bad[:10]:
            out.print(f"  line {b['line']}: {b['reason']}")
        if len(bad) > 10:
            out.print(f"  ... and {len(bad) - 10:,} more")
    if summary["longest"]:
        longest = Table(title="longest examples", title_justify="left")
        for col in ("tokens", "split", "conversation", "turn"):
            longest.add_column(col, justify="right" if col in ("tokens", "turn") else "left")
        for row in summary["longest"]:
            longest.add_row(f"{row['tokens']:,}", row["split"], row["conversation"], str(row["turn"]))
        out.print(longest)
    over = summary["over_max_tokens"]
    if summary["max_tokens"]:
        out.print(f"{len(over):,} examples over --max-tokens {summary['max_tokens']:,} (kept, not cut)")
        for row in over[:10]:
            out.print(f"  {row['split']} {row['conversation']} turn {row['turn']}: {row['tokens']:,} tokens")
    cost = summary["openai_cost"]
    note = "" if cost["applies"] else " [dim](this format is not an OpenAI chat file: same tokens as SFT)[/dim]"
    out.print(
        f"OpenAI fine-tune of the train file: {cost['training_tokens']:,} tokens x {cost['epochs']} epochs "
        f"({cost['epochs_rule']}) x ${cost['usd_per_million']:.2f}/1M ({cost['model']}, prices as of "
        f"{cost['prices_as_of']}) = [bold]${cost['usd']:,.2f}[/bold]{note}"
    )
    others = [
        f"{m} ${pricing.training_cost(cost['training_tokens'], cost['epochs'], m):,.2f}"
        for m in pricing.PRICES if m != cost["model"]
    ]
    out.print(f"[dim]other models: {', '.join(others)}[/dim]")
    for warning in summary.get("warnings", []):
        out.print(f"[yellow]warning: {warning}[/yellow]")


def run_check(args: argparse.Namespace) -> int:
    from engine.pipeline.openai_format import validate_file

    limit = pricing.price(args.openai_model).example_token_limit
    with console.status("checking"):
        report = validate_file(args.file, token_limit=limit, model=args.model or None)
    for breach in report.breaches[:50]:
        console.print(breach.text(report.path), markup=False, highlight=False, soft_wrap=True)
    if len(report.breaches) > 50:
        console.print(f"... and {len(report.breaches) - 50:,} more")
    longest = max(report.tokens, default=0)
    if report.ok:
        console.print(
            f"[green]ok[/green]: {report.examples:,} examples follow the OpenAI fine-tuning rules "
            f"(longest {longest:,} tokens, limit {limit:,} for {args.openai_model})"
        )
        return 0
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts().items()))
    console.print(f"[red]{len(report.breaches):,} breaches[/red] in {report.examples:,} examples: {counts}")
    return 1
