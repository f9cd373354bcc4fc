"""Players by name: the one place a `--persuader` or `--human-agent` spec becomes an object.

A spec is a registered name (`planner`, `rational`) or `prefix:argument` (`openai:gpt-4o`, `local:PATH`).
Any module in `engine.persuaders` or `engine.targets` that defines `register()` is imported on first use and
registers its factories here, so the CLI, evaluation and the TUI all accept the same specs. Such modules import
heavy libraries (torch, SDKs) inside their factories, never at module level.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.errors import LabError
from engine.game import Persuader, Target

PersuaderFactory = Callable[[str], Persuader]
TargetFactory = Callable[[str], Target]

_PERSUADERS: dict[str, tuple[PersuaderFactory, str]] = {}
_TARGETS: dict[str, tuple[TargetFactory, str]] = {}


def register_persuader(prefix: str, factory: PersuaderFactory, help: str) -> None:
    _PERSUADERS[prefix] = (factory, help)


def register_target(prefix: str, factory: TargetFactory, help: str) -> None:
    _TARGETS[prefix] = (factory, help)


def _lookup(spec: str, table: dict, what: str):
    _load_builtins()
    if spec in table:
        return table[spec][0](""), spec
    prefix, sep, arg = spec.partition(":")
    if sep and prefix in table:
        return table[prefix][0](arg), prefix
    name, sep, options = spec.partition("?")  # `local?temperature=0` reads as `local:?temperature=0`
    if sep and ":" not in name and name in table:
        return table[name][0]("?" + options), name
    known = ", ".join(f"{k} ({v[1]})" for k, v in table.items())
    raise LabError(f"unknown {what} '{spec}'. Known: {known}")


def make_persuader(spec: str) -> Persuader:
    player, _ = _lookup(spec, _PERSUADERS, "persuader")
    return player


def make_target(spec: str) -> Target:
    player, _ = _lookup(spec, _TARGETS, "human agent")
    return player


def persuader_names() -> dict[str, str]:
    _load_builtins()
    return {k: v[1] for k, v in _PERSUADERS.items()}


def target_names() -> dict[str, str]:
    _load_builtins()
    return {k: v[1] for k, v in _TARGETS.items()}


_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import pkgutil

    import engine.persuaders
    import engine.targets

    for package in (engine.persuaders, engine.targets):
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            if hasattr(module, "register"):
                module.register()
