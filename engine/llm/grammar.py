"""Decoding a local model's reply under a Lark grammar, with llguidance as a transformers logits processor.

llguidance (a maintained library, one self-contained wheel) compiles the grammar against the model's tokenizer
and says, token by token, which tokens may come next; `GrammarLogits` only applies that mask to each row of a
batched `generate` call, so every game in a batch keeps its own grammar (its own scenario). A row without a
grammar (None) is left free. Where llguidance is not installed, `available()` is False and the caller falls back
to free text with a one-line notice.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from engine.errors import LabError

LIBRARY = "llguidance"
INSTALL_HINT = "pip install llguidance"


def available() -> bool:
    """Whether the grammar library is installed (checked without importing it)."""
    return importlib.util.find_spec(LIBRARY) is not None


class GrammarCompiler:
    """Grammars compiled for one tokenizer; wrapping the tokenizer takes about a second, so it is done once, lazily."""

    def __init__(self, tokenizer: Any) -> None:
        self.hf_tokenizer = tokenizer
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _llg_tokenizer(self) -> Any:
        with self._lock:
            if self._tokenizer is None:
                from llguidance.hf import from_tokenizer

                try:
                    self._tokenizer = from_tokenizer(self.hf_tokenizer)
                except ValueError as exc:  # e.g. a slow (Python) tokenizer, which llguidance cannot read
                    raise LabError(f"the reply grammar cannot be built for this tokenizer: {exc}") from None
            return self._tokenizer

    def check(self, lark: str) -> None:
        """A LabError naming the cause when `lark` is not a usable grammar for this tokenizer."""
        from llguidance import LLMatcher

        grammar = LLMatcher.grammar_from_lark(lark)
        bad, messages = LLMatcher.validate_grammar_with_warnings(grammar, self._llg_tokenizer())
        if bad:
            raise LabError(f"the reply grammar cannot be built: {(messages or ['unknown error'])[0].splitlines()[0]}")

    def matcher(self, lark: str) -> Any:
        """A fresh matcher: the state of one reply being decoded."""
        from llguidance import LLMatcher

        matcher = LLMatcher(self._llg_tokenizer(), LLMatcher.grammar_from_lark(lark))
        if matcher.is_error():
            raise LabError(f"the reply grammar cannot be built: {matcher.get_error().splitlines()[0]}")
        return matcher


class GrammarLogits:
    """A transformers logits processor: row i may only take the tokens its matcher allows (None: any token).

    Put it before temperature and top-p (the caller passes those after it), so sampling never meets a row whose
    every remaining token was masked away.
    """

    def __init__(self, matchers: list[Any | None]) -> None:
        self.matchers = matchers
        self._started = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self._started:  # the token chosen at the last step, fed to each row's matcher
            for row, matcher in enumerate(self.matchers):
                if matcher is not None and not matcher.is_stopped():
                    matcher.consume_token(int(input_ids[row, -1]))
        self._started = True
        vocab = scores.shape[-1]
        for row, matcher in enumerate(self.matchers):
            if matcher is None:
                continue
            allowed = torch.from_numpy(allowed_tokens(matcher, vocab)).to(scores.device)
            scores[row, ~allowed] = float("-inf")
        return scores


def allowed_tokens(matcher: Any, vocab: int) -> Any:
    """The matcher's next-token mask as a numpy bool array of `vocab` entries (ids past its tokenizer: False)."""
    import numpy as np

    bits = np.unpackbits(np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
    allowed = np.zeros(vocab, dtype=bool)
    n = min(vocab, bits.size)
    allowed[:n] = bits[:n].astype(bool)
    return allowed
