"""`ptom-lab`: with no arguments it opens the TUI; subcommands run the same engine headless.

Each command group is a module in this package exposing `register(subparsers, common)`; it is found by name,
so adding a command means adding a module, not editing this one.
Every `LabError` is printed as one clear line (exit 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from engine import __version__
from engine.errors import LabError


def command_modules() -> list[str]:
    import pkgutil

    import engine.cli as package

    return [f"engine.cli.{m.name}" for m in pkgutil.iter_modules(package.__path__) if m.name != "common"]


def build_parser() -> argparse.ArgumentParser:
    db_help = "the session store (default: $PTOM_DB or sessions.db)"
    # `--db` is accepted before or after the command; SUPPRESS keeps a subcommand from resetting it to None.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    parser = argparse.ArgumentParser(
        prog="ptom-lab",
        description="PToM Lab: planning theory-of-mind persuasion agents. With no command, opens the TUI.",
    )
    parser.add_argument("--db", default=None, help=db_help)
    parser.add_argument("--version", action="version", version=f"ptom-lab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_modules():
        module = importlib.import_module(name)
        if hasattr(module, "register"):
            module.register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if not getattr(args, "func", None):
            return open_tui(args, parser)
        return int(args.func(args) or 0)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: everything up to the last finished turn is in the store", file=sys.stderr)
        return 130


def open_tui(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        app_module = importlib.import_module("ptom_tui.app")
    except ModuleNotFoundError:
        parser.print_help()
        return 0
    return int(app_module.run(db=args.db) or 0)


if __name__ == "__main__":
    sys.exit(main())
