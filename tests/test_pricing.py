"""The OpenAI fine-tuning price table and the cost rule (tokens x epochs x price)."""

from __future__ import annotations

import pytest

from engine.errors import LabError
from engine.llm import pricing


def test_table_is_sane():
    assert pricing.DEFAULT_MODEL in pricing.PRICES and pricing.PRICES_AS_OF and pricing.PRICES_SOURCE.startswith("https://")
    for name, p in pricing.PRICES.items():
        assert p.model == name and 0 < p.usd_per_million < 1000 and p.example_token_limit >= 4096


def test_cost_is_tokens_times_epochs_times_price():
    p = pricing.price("gpt-4o-mini-2024-07-18").usd_per_million
    assert pricing.training_cost(1_000_000, 3, "gpt-4o-mini-2024-07-18") == pytest.approx(3 * p)
    assert pricing.training_cost(0, 3) == 0
    with pytest.raises(LabError, match="engine/llm/pricing.py"):
        pricing.price("gpt-99")


@pytest.mark.parametrize(("n", "epochs"), [(10, 10), (20, 5), (33, 3), (34, 3), (8333, 3), (8334, 2), (10_000, 2), (30_000, 1), (1, 25)])
def test_auto_epochs_follows_the_cookbook_rule(n, epochs):
    assert pricing.auto_epochs(n) == epochs
