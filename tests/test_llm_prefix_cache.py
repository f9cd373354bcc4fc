"""The prefix cache on a tiny randomly initialised Llama (a real transformers model, built in milliseconds): what it
reuses, what it keeps, and that generating from its stacked caches writes what reading the prompts whole writes."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from engine.llm.prefix_cache import PrefixCache, stack

PAD = 0


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(config).eval()


def greedy(model, inputs, n=6):
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=PAD)
    return [row[inputs["input_ids"].shape[1]:].tolist() for row in out]


def plain(rows):
    length = max(map(len, rows))
    return {"input_ids": torch.tensor([[PAD] * (length - len(r)) + r for r in rows]),
            "attention_mask": torch.tensor([[0] * (length - len(r)) + [1] * len(r) for r in rows])}


GAME = [5, 6, 7, 8, 9, 10, 11, 12]  # a scenario's system prompt
TURN1 = GAME + [20, 21, 22, 30]  # + belief line of turn 1
TURN2 = GAME + [20, 21, 40, 41, 42, 31, 32]  # + the first exchange, then turn 2's belief line
OTHER = [5, 6, 50, 51, 52, 53]


def test_generating_from_the_cache_writes_what_reading_whole_prompts_writes(model):
    cache = PrefixCache()
    first = [cache.prefill(model, r) for r in (TURN1, OTHER)]
    assert greedy(model, stack(first, PAD, "cpu")) == greedy(model, plain([TURN1, OTHER]))
    second = [cache.prefill(model, r) for r in (TURN2, OTHER, [7])]  # rows of unequal length, one of one token
    # OTHER shares [5, 6] with TURN1, then its whole head (5) with itself; TURN2 shares GAME + [20, 21] with TURN1
    assert cache.reused_tokens == 2 + 10 + 5
    assert greedy(model, stack(second, PAD, "cpu")) == greedy(model, plain([TURN2, OTHER, [7]]))


def test_the_longest_prefix_is_reused_and_an_entry_inside_a_longer_one_is_dropped(model):
    cache = PrefixCache()
    cache.prefill(model, GAME)
    entry, n = cache.longest(TURN1)
    assert entry is not None and n == len(GAME) - 1  # a prompt is kept up to (not including) its last token
    cache.prefill(model, TURN1)
    assert len(cache) == 1  # TURN1 holds all of GAME's entry
    cache.prefill(model, TURN2)
    assert len(cache) == 2  # turn 1's belief line is not in turn 2: both kept
    assert cache.read_tokens == len(GAME) - 1 + 4 + 4  # each turn reads only what it adds


def test_the_byte_budget_drops_the_least_recently_used(model):
    cache = PrefixCache()
    cache.prefill(model, TURN1)
    cache.prefill(model, OTHER)
    cache.budget_bytes = cache.nbytes  # room for these two only
    cache.prefill(model, TURN1)  # used again: now the most recent
    cache.prefill(model, [60, 61, 62, 63, 1, 2])
    assert cache.longest(TURN1)[1] == len(TURN1) - 1
    assert len(cache) == 2 and cache.longest(OTHER)[1] == 2  # its own entry is gone: only [5, 6], in TURN1's
    cache.budget_bytes = 0  # keeps nothing: every prompt is read whole
    cache.prefill(model, TURN1)
    assert len(cache) == 0
