"""OpenAI fine-tuning prices and limits: the one table to update when OpenAI changes them.

Prices are USD per 1M *training* tokens for supervised fine-tuning, as published on the fine-tuning section of
https://openai.com/api/pricing/ (checked against https://platform.openai.com/docs/pricing), read 2025-06;
this workplace has no network, so re-check that page before quoting a figure. A fine-tune bills every training
token once per epoch, so `cost = training tokens x epochs x price`.

Per-example token limits ("training examples context length") come from the fine-tuning guide,
https://platform.openai.com/docs/guides/fine-tuning (token limits); longer examples are truncated by the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import LabError

PRICES_AS_OF = "2025-06"
PRICES_SOURCE = "https://openai.com/api/pricing/ (fine-tuning, training per 1M tokens)"


@dataclass(frozen=True)
class FineTunePrice:
    model: str
    usd_per_million: float  # training tokens
    example_token_limit: int  # the longest training example the API takes


PRICES: dict[str, FineTunePrice] = {
    p.model: p
    for p in (
        FineTunePrice("gpt-4.1-2025-04-14", 25.00, 65_536),
        FineTunePrice("gpt-4.1-mini-2025-04-14", 5.00, 65_536),
        FineTunePrice("gpt-4.1-nano-2025-04-14", 1.50, 65_536),
        FineTunePrice("gpt-4o-2024-08-06", 25.00, 65_536),
        FineTunePrice("gpt-4o-mini-2024-07-18", 3.00, 65_536),
        FineTunePrice("gpt-3.5-turbo-0125", 8.00, 16_385),
    )
}
DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"

# The API's `n_epochs: "auto"` picks epochs from the dataset size; the OpenAI cookbook's data-prep notebook
# (examples/Chat_finetuning_data_prep.ipynb) documents the rule reproduced in `auto_epochs`.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def price(model: str = DEFAULT_MODEL) -> FineTunePrice:
    if model not in PRICES:
        raise LabError(f"no fine-tuning price for '{model}' (known: {', '.join(PRICES)}); add it to engine/llm/pricing.py")
    return PRICES[model]


def auto_epochs(n_examples: int) -> int:
    """The epochs `n_epochs="auto"` would choose for a training file of `n_examples` examples."""
    if n_examples <= 0:
        return TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


def training_cost(tokens: int, epochs: int, model: str = DEFAULT_MODEL) -> float:
    """USD for a fine-tune that reads `tokens` training tokens `epochs` times."""
    return tokens * epochs * price(model).usd_per_million / 1_000_000


__all__ = [
    "DEFAULT_MODEL",
    "PRICES",
    "PRICES_AS_OF",
    "PRICES_SOURCE",
    "FineTunePrice",
    "auto_epochs",
    "price",
    "training_cost",
]
