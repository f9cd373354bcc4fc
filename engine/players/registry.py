"""Players by name: the one place a `--persuader`, `--human-agent` or `--model` spec becomes an object.

A spec (`engine.players.spec`: `KIND[:ARGUMENT][?KEY=VALUE&...]`) names a registered kind (`planner`, `rational`,
`openai`) or a model alias from `engine.llm.catalog` (`gpt-4o-mini`, `claude-sonnet-4`), which every role that
registers the alias's provider accepts. Each kind declares the arguments and options it takes, so a misspelt option
is an error naming the known ones for every player, rule-based ones included.
Any module in `engine.players.persuaders` or `engine.players.targets` that defines `register()` is imported on first use and
registers its kinds here, so the CLI, evaluation and the TUI all accept the same specs. Such modules import
heavy libraries (torch, SDKs) inside their factories, never at module level.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import LabError
from engine.game.interfaces import Persuader, Target
from engine.llm.catalog import ALIASES
from engine.players.spec import PlayerSpec, parse


@dataclass(frozen=True)
class Kind:
    """A registered kind of player: how to build one from its spec, and what the spec may hold."""

    factory: Callable[[PlayerSpec], Any]
    help: str
    options: tuple[str, ...] = ()
    arguments: tuple[str, ...] | None = ()  # () takes none, None takes any (a model, a path), else these presets


_PERSUADERS: dict[str, Kind] = {}
_TARGETS: dict[str, Kind] = {}
_ROLES = {"persuader": _PERSUADERS, "human agent": _TARGETS}


def register_persuader(
    prefix: str, factory: Callable[[PlayerSpec], Persuader], help: str,
    options: Sequence[str] = (), arguments: Sequence[str] | None = (),
) -> None:
    _PERSUADERS[prefix] = Kind(factory, help, tuple(options), None if arguments is None else tuple(arguments))


def register_target(
    prefix: str, factory: Callable[[PlayerSpec], Target], help: str,
    options: Sequence[str] = (), arguments: Sequence[str] | None = (),
) -> None:
    _TARGETS[prefix] = Kind(factory, help, tuple(options), None if arguments is None else tuple(arguments))


def resolve(spec: str | PlayerSpec, role: str = "persuader") -> tuple[Kind, PlayerSpec]:
    """The kind a spec names (an alias reaches its provider's kind) and the spec checked against it, in
    canonical form (`planner:noise=0.3,asks=1`, the older planner form, reads as `planner?noise=0.3&asks=1`)."""
    _load_builtins()
    table = _ROLES[role]
    parsed = spec if isinstance(spec, PlayerSpec) else parse(spec)
    kind = table.get(parsed.kind)
    alias = ALIASES.get(parsed.kind) if kind is None else None
    if alias is not None:
        kind = table.get(alias.provider)
    if kind is None:
        known = ", ".join(f"{k} ({v.help})" for k, v in table.items())
        aliases = ", ".join(a for a, entry in ALIASES.items() if entry.provider in table)
        raise LabError(f"unknown {role} '{spec}'. Known: {known}" + (f"; model aliases: {aliases}" if aliases else ""))
    if alias is not None and parsed.argument:
        raise LabError(f"'{spec}': the alias {parsed.kind} names its model ({alias.provider}:{alias.model}); "
                       f"write {alias.provider}:MODEL for another")
    parsed = _settings_argument(parsed, kind, role)
    if kind.arguments is not None and parsed.argument and parsed.argument not in kind.arguments:
        takes = f"the argument {' or '.join(kind.arguments)}" if kind.arguments else "no argument"
        raise LabError(f"{role} '{parsed.kind}' takes {takes}, not '{parsed.argument}'")
    for key in parsed.options:
        if key not in kind.options:
            name = alias.provider if alias else parsed.kind
            elsewhere = [f"{other}s" for other, t in _ROLES.items() if name in t and key in t[name].options]
            raise LabError(f"unknown option '{key}' for the {role} '{parsed.kind}' "
                           f"(its options: {', '.join(kind.options) or 'none'})"
                           + (f"; {key} is for {' and '.join(elsewhere)}" if elsewhere else ""))
    return kind, parsed


def _settings_argument(spec: PlayerSpec, kind: Kind, role: str) -> PlayerSpec:
    """`planner:noise=0.3,asks=1` (settings where a kind with fixed arguments has its argument) as options: the
    form specs had before they took options after '?', still accepted because it cannot mean anything else."""
    if kind.arguments is None or spec.argument in kind.arguments or "=" not in spec.argument:
        return spec
    preset, options = "", {}
    for item in filter(None, re.split(r"[,:]", spec.argument)):
        key, eq, value = item.partition("=")
        if not eq and item in (kind.arguments or ()) and not preset:
            preset = item
        elif eq and key in kind.options:
            options[key] = value
        else:
            raise LabError(f"unknown option '{item}' for the {role} '{spec.kind}' "
                           f"(its options: {', '.join(kind.options) or 'none'}; write {spec.kind}?KEY=VALUE&...)")
    return PlayerSpec(spec.kind, preset, {**options, **spec.options})


def canonical(spec: str | PlayerSpec, role: str = "persuader") -> PlayerSpec:
    """The spec checked and in the form players are stored under; nothing is built (no model loads, no key)."""
    return resolve(spec, role)[1]


def make_persuader(spec: str | PlayerSpec) -> Persuader:
    kind, parsed = resolve(spec, "persuader")
    return kind.factory(parsed)


def make_target(spec: str | PlayerSpec) -> Target:
    kind, parsed = resolve(spec, "human agent")
    return kind.factory(parsed)


def spec_list(values: Sequence[str], role: str = "persuader") -> list[PlayerSpec]:
    """Specs given as separate values (`--models planner?asks=1 greedy`). A value with commas is also read the
    old way, as a comma-separated list, when only that reading is valid; when both are, the user must choose."""
    out: list[PlayerSpec] = []
    for value in values:
        parts = [p.strip() for p in value.split(",") if p.strip()] if "," in value else []
        split = [spec for spec in (_valid(p, role) for p in parts) if spec is not None]
        old_form = bool(parts) and len(split) == len(parts)
        try:
            whole = canonical(value, role)
        except LabError as exc:
            if not old_form:
                hint = "; give each spec as its own value (--models A B)" if parts else ""
                raise LabError(f"{exc}{hint}") from None
            out += split
            continue
        if old_form:
            raise LabError(f"'{value}' reads both as one spec and as {len(parts)} comma-separated ones; "
                           "give each spec as its own value (--models A B)")
        out.append(whole)
    return out


def _valid(text: str, role: str) -> PlayerSpec | None:
    try:
        return canonical(text, role)
    except LabError:
        return None


def persuader_names() -> dict[str, str]:
    return {name: kind.help for name, kind in kinds("persuader").items()}


def target_names() -> dict[str, str]:
    return {name: kind.help for name, kind in kinds("human agent").items()}


def kinds(role: str) -> dict[str, Kind]:
    """Every kind a role accepts, model aliases included (with their provider's options), for `play --list`."""
    _load_builtins()
    table = _ROLES[role]
    aliases = {
        name: Kind(table[a.provider].factory, f"{a.provider}:{a.model}" + (f", {a.note}" if a.note else ""),
                   table[a.provider].options)
        for name, a in ALIASES.items() if a.provider in table
    }
    return {**table, **aliases}


_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import pkgutil

    import engine.players.persuaders
    import engine.players.targets

    for package in (engine.players.persuaders, engine.players.targets):
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            if hasattr(module, "register"):
                module.register()
