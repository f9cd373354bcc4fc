"""The one grammar of a player spec, `KIND[:ARGUMENT][?KEY=VALUE&KEY=VALUE...]`, read and written here only.

Every role takes it (`--persuader`, `--human-agent`, `--model`, `--models`, `--mix SPEC@WEIGHT`):

    planner   planner:weak   planner?noise=0.3&asks=1   greedy   rational   me
    local   local:PATH+ADAPTER?temperature=0   openai:gpt-4o?belief=self   gpt-4o-mini   claude-sonnet-4
    openai-compatible:http://localhost:8000/v1:meta-llama/Llama-3.1-8B-Instruct

KIND is a registered player or a model alias; ARGUMENT is everything up to the first `?` (a model, a path, a URL
and model, a preset), so it may hold `:` and `,`; options are `KEY=VALUE` pairs joined by `&`. `str(spec)` writes
the canonical text back, so a spec parsed from it is equal to the spec: that text is the name a player is stored
under. Which arguments and options a kind accepts is declared where it is registered (`engine.players.registry`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from engine.errors import LabError

GRAMMAR = "KIND[:ARGUMENT][?KEY=VALUE&KEY=VALUE...]"
_KIND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_KEY = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class PlayerSpec:
    """A parsed spec: what kind of player, its argument ('' = none) and its options in the order written."""

    kind: str
    argument: str = ""
    options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The checks that make `parse(str(spec)) == spec` hold for specs built in code, not only parsed ones.
        if not _KIND.match(self.kind):
            raise LabError(f"player kind '{self.kind}': letters, digits, '.', '_' and '-' only ({GRAMMAR})")
        if "?" in self.argument:
            raise LabError(f"spec argument '{self.argument}' may not hold '?': options follow it ({GRAMMAR})")
        for key, value in self.options.items():
            if not _KEY.match(key) or "&" in value:
                raise LabError(f"spec option '{key}={value}': a key of letters, digits and '_', a value without '&'")

    def __str__(self) -> str:
        text = self.kind + (f":{self.argument}" if self.argument else "")
        return text + ("?" + "&".join(f"{k}={v}" for k, v in self.options.items()) if self.options else "")

    def __hash__(self) -> int:
        return hash(str(self))

    def with_options(self, **options: str) -> PlayerSpec:
        """The spec with these options set (added at the end, or replacing a value in place)."""
        return replace(self, options={**self.options, **options})

    def without(self, *keys: str) -> PlayerSpec:
        """The spec less these options (e.g. the generation settings a leaderboard label leaves out)."""
        return replace(self, options={k: v for k, v in self.options.items() if k not in keys})


def parse(text: str) -> PlayerSpec:
    """`text` as a PlayerSpec, checking the grammar only (whether the kind exists is the registry's question)."""
    text = text.strip()
    head, _, query = text.partition("?")
    kind, _, argument = head.partition(":")
    if not _KIND.match(kind):
        hint = f"; a model folder is written local:{head}" if "/" in kind or kind.startswith(".") else ""
        raise LabError(f"'{text}' is not a player spec: write {GRAMMAR}, e.g. planner or openai:gpt-4o{hint}")
    options: dict[str, str] = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq or not _KEY.match(key):
            raise LabError(f"'{text}': option '{part}' is not KEY=VALUE ({GRAMMAR})")
        if key in options:
            raise LabError(f"'{text}': option '{key}' is given twice")
        options[key] = value
    return PlayerSpec(kind, argument, options)


def parse_weighted(text: str) -> tuple[PlayerSpec, float]:
    """`SPEC@WEIGHT` (weight 1 when no `@`), as `generate --mix` takes it; errors name the item."""
    body, sep, weight = text.rpartition("@")
    if not sep:
        body, weight = text, "1"
    try:
        value = float(weight)
        if not value > 0:
            raise ValueError
    except ValueError:
        raise LabError(f"--mix '{text}': write SPEC@WEIGHT with a positive weight, e.g. planner?noise=0.3@0.4") from None
    return parse(body), value


__all__ = ["GRAMMAR", "PlayerSpec", "parse", "parse_weighted"]
