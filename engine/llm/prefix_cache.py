"""Prompt prefixes a local model has already read, kept as key/value tensors so a game's next turn reads only
what is new.

On a CPU, reading the prompt is most of a turn's cost: a 500-token prompt takes over a second, and a `moves`
reply is ten tokens. A game's prompt keeps everything of the last turn's prompt up to its belief line
(`engine.players.prompts` puts what changes every turn last), so the longest cached prefix covers the scenario
and all but the newest exchange.

Each prompt of a batch is read alone (one forward over just its new tokens, no padding; on the CPU a batch
would cost as much per token, plus its padding), and the batch's caches are then stacked, left-padded and masked,
so that `generate` reads only each prompt's last token before writing the replies together. Entries live in
least-recently-used order within a byte budget; an entry that a longer prompt extended is dropped, since the
longer one holds its prefix.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DEFAULT_BUDGET_BYTES = 1 << 30  # the 135M model's cache is ~46 kB a token in float32: ~40 game prompts


@dataclass
class _Entry:
    ids: tuple[int, ...]
    layers: list[tuple[Any, Any]]  # per layer: keys, values of shape (1, heads, len(ids), head_dim)
    nbytes: int


@dataclass
class Prefilled:
    """One prompt, read up to (not including) its last token."""

    ids: list[int]
    layers: list[tuple[Any, Any]] | None  # None: a one-token prompt has nothing to read ahead


def common_prefix(a: tuple[int, ...], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def longest(keys: Iterable[tuple[int, ...]], ids: list[int]) -> tuple[tuple[int, ...] | None, int]:
    """The key sharing the longest (non-empty) prefix with `ids`, and that prefix's length."""
    best, best_n = None, 0
    for key in keys:
        if key and ids and key[0] == ids[0]:
            n = common_prefix(key, ids)
            if n > best_n:
                best, best_n = key, n
    return best, best_n


class PrefixCache:
    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[tuple[int, ...], _Entry] = OrderedDict()
        self.reused_tokens = 0  # prompt tokens found in the cache, for benchmarks
        self.read_tokens = 0  # prompt tokens the model had to read

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def longest(self, ids: list[int]) -> tuple[_Entry | None, int]:
        """The entry sharing the longest prefix with `ids`, and that prefix's length."""
        key, n = longest(self._entries, ids)
        return (self._entries[key] if key is not None else None), n

    def prefill(self, model: Any, ids: list[int]) -> Prefilled:
        """Read `ids[:-1]` into a cache, reusing the longest cached prefix, and keep the result for later turns."""
        import torch
        from transformers import DynamicCache

        head = ids[:-1]
        if not head:
            return Prefilled(ids, None)
        entry, n = self.longest(head)
        layers = [(k[:, :, :n], v[:, :, :n]) for k, v in entry.layers] if entry is not None and n else None
        self.reused_tokens += n
        if n < len(head):
            device = next(model.parameters()).device
            cache = DynamicCache(ddp_cache_data=layers) if layers else DynamicCache()
            with torch.inference_mode():
                out = model(input_ids=torch.tensor([head[n:]], device=device), cache=cache, use_cache=True,
                            logits_to_keep=1)
            layers = [(layer.keys, layer.values) for layer in out.cache.layers]
            self.read_tokens += len(head) - n
        assert layers is not None
        self._keep(tuple(head), layers, parent=entry if entry is not None and n == len(entry.ids) else None)
        return Prefilled(ids, layers)

    def _keep(self, ids: tuple[int, ...], layers: list[tuple[Any, Any]], parent: _Entry | None) -> None:
        if parent is not None:  # wholly inside the new entry
            self._entries.pop(parent.ids, None)
        if ids in self._entries:
            self._entries.move_to_end(ids)
            return
        nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)
        self._entries[ids] = _Entry(ids, layers, nbytes)
        total = self.nbytes
        while total > self.budget_bytes and self._entries:  # a budget of 0 keeps nothing: every prompt read whole
            _, old = self._entries.popitem(last=False)
            total -= old.nbytes

    def clear(self) -> None:
        self._entries.clear()


def stack(rows: list[Prefilled], pad_id: int, device: Any) -> dict[str, Any]:
    """`generate` inputs for prefilled prompts: ids and mask left-padded to one length, and (when any prompt has
    more than one token) one cache holding every row's prefix, left-padded the same way."""
    import torch
    from transformers import DynamicCache

    length = max(len(r.ids) for r in rows)
    input_ids = torch.tensor([[pad_id] * (length - len(r.ids)) + r.ids for r in rows], device=device)
    mask = torch.tensor([[0] * (length - len(r.ids)) + [1] * len(r.ids) for r in rows], device=device)
    inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
    if length == 1:
        return inputs
    template = next(r.layers for r in rows if r.layers)
    stacked = []
    for i, (k0, v0) in enumerate(template):
        keys = k0.new_zeros((len(rows), k0.shape[1], length - 1, k0.shape[3]))
        values = v0.new_zeros((len(rows), v0.shape[1], length - 1, v0.shape[3]))
        for row, r in enumerate(rows):
            if r.layers:
                n = len(r.ids) - 1
                keys[row, :, length - 1 - n :] = r.layers[i][0][0]
                values[row, :, length - 1 - n :] = r.layers[i][1][0]
        stacked.append((keys, values))
    inputs["cache"] = DynamicCache(ddp_cache_data=stacked)
    return inputs
