"""Model aliases and per-token prices: the one table to update when providers change models or prices.

`claude-sonnet-4` and the other aliases let a researcher write `--human-agent claude-sonnet-4` and get a current
model; the id it points to is set here and nowhere else. Prices are USD per 1M tokens (input, output) from
https://www.anthropic.com/pricing and https://openai.com/api/pricing/ as read in 2025-10; this workplace has no
network, so re-check those pages before quoting a cost. An unknown model costs 0 (reported as an estimate only).
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_AS_OF = "2025-10"


@dataclass(frozen=True)
class Alias:
    provider: str  # anthropic | openai
    model: str
    note: str = ""


ALIASES: dict[str, Alias] = {
    # Ids from the installed anthropic SDK's model list (claude-sonnet-4-5 is marked deprecated there).
    "claude-sonnet-4": Alias("anthropic", "claude-sonnet-4-6", "current Claude Sonnet 4 model (4.6)"),
    "claude-haiku-4": Alias("anthropic", "claude-haiku-4-5", "current Claude Haiku (4.5)"),
    "claude-opus-4": Alias("anthropic", "claude-opus-4-8", "current Claude Opus 4 model (4.8)"),
    "gpt-4o": Alias("openai", "gpt-4o"),
    "gpt-4o-mini": Alias("openai", "gpt-4o-mini"),
    "gpt-4.1": Alias("openai", "gpt-4.1"),
    "gpt-4.1-mini": Alias("openai", "gpt-4.1-mini"),
}

# model id prefix -> (USD per 1M input tokens, USD per 1M output tokens); the longest matching prefix wins,
# so dated snapshots (gpt-4o-2024-08-06, claude-sonnet-4-5-20250929) find their family's price.
PRICES: dict[str, tuple[float, float]] = {
    "claude-sonnet-4": (3.00, 15.00),  # 4.6: assumed at the Sonnet 4/4.5 price, not checked
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),  # 4 and 4.1
    "claude-opus-4-5": (5.00, 25.00),
    "claude-opus-4-6": (5.00, 25.00),  # 4.6 to 4.8: assumed at the 4.5 price, not checked
    "claude-opus-4-7": (5.00, 25.00),
    "claude-opus-4-8": (5.00, 25.00),
    "claude-haiku-4": (1.00, 5.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o4-mini": (1.10, 4.40),
}


def resolve(name: str) -> Alias | None:
    """The provider and model id an alias names, or None for a name that is not an alias."""
    return ALIASES.get(name)


def price(model: str) -> tuple[float, float]:
    matches = [p for p in PRICES if model == p or model.startswith(p + "-")]
    if not matches:
        return (0.0, 0.0)
    return PRICES[max(matches, key=len)]


def estimate_cost(model: str, input_tokens: int, output_tokens: int) -> float:
    """USD for one call, from the table above (0 for local and unknown models)."""
    per_in, per_out = price(model)
    return (input_tokens * per_in + output_tokens * per_out) / 1_000_000


__all__ = ["ALIASES", "PRICES", "PRICES_AS_OF", "Alias", "estimate_cost", "price", "resolve"]
