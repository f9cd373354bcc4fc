"""The embedded model on llama.cpp (`llama-cpp-python`, an optional extra: `./setup.sh --llama-cpp`), the faster
engine for local play on a CPU.

The embedded SmolLM2 ships as a GGUF file of 4-bit blocks, and the transformers engine plays a float32 copy of
them. llama.cpp plays the same values widened once to float16 (`base_gguf`) and applies a LoRA adapter beside
them, converted once into llama.cpp's adapter format (`lora_gguf`) and never merged: an adapter trained on the
transformers copy plays here unchanged (a test holds the two engines' logits together). On this lab's 2-core CPU
it reads prompts about as fast as transformers and writes a token several times faster than transformers at
batch 1; tokens the turn's grammar leaves no choice about (`MOVES: `, the one id a prefix allows) are read together
with the token before them instead of written one by one. `bench/evaluate.py --engine llama.cpp` times a held-out
evaluation on it.

Prompts are tokenised by the model's Hugging Face tokenizer (the one training used, the one llguidance reads), a
reply is decoded under the turn's grammar with the same llguidance matcher as on transformers, and each prompt is
read through a cache of llama.cpp states (`StateCache`): a game's next turn restores its last one and reads only
what is new. Requests from concurrent games are answered one at a time, on one context.

`engine=auto` (the default) plays the embedded model, with or without an adapter, here whenever llama-cpp-python is
installed and the spec asks nothing only transformers does (`dtype=`, `4bit=`, a GPU); where only the library is
missing, one `note:` line says so and transformers plays (`engine.llm.local.choose_engine`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from engine.errors import LabError
from engine.llm.base import Backend, ChatResult, GenerationOptions, Message, TextCallback, current_cancel
from engine.llm.embedded import cache_dir, embedded_model_dir, gguf_path
from engine.llm.grammar import INSTALL_HINT as GRAMMAR_HINT
from engine.llm.grammar import GrammarCompiler, allowed_tokens
from engine.llm.grammar import available as grammar_available
from engine.llm.prefix_cache import common_prefix, longest

INSTALL_HINT = "./setup.sh --llama-cpp (builds llama-cpp-python, about 10 minutes on 2 cores)"
ENGINES = ("auto", "transformers", "llama.cpp")  # the `engine=` spec option of local models
DEFAULT_CONTEXT = 4096  # tokens: the longest prompt and reply of a game (the model itself reads 8,192)
DEFAULT_STATE_BUDGET = 1 << 30  # bytes of cached states: ~23 kB a token, so ~45 game prompts of 1,000 tokens
TOP_P = 0.95  # as the transformers engine samples
FLASH_ATTENTION = True  # measured: see the README's evaluation speed
DEFAULT_WEIGHTS = "f16"  # how llama.cpp holds the embedded weights: see `base_gguf`
CONVERSION = "lora-gguf-1"  # part of a converted adapter's cache key: a change to `_write_lora` converts afresh


def available() -> bool:
    """Whether llama-cpp-python is installed and loads (its shared library too); imported only where it would run."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def is_embedded_folder(model_dir: str | Path) -> bool:
    """Whether a resolved model folder is the embedded model's converted copy (whose GGUF llama.cpp reads)."""
    try:
        return Path(model_dir).resolve() == embedded_model_dir().resolve()
    except LabError:
        return False


# ----- the weights, converted once -------------------------------------------------------------------------
def base_gguf(weights: str = DEFAULT_WEIGHTS) -> Path:
    """The embedded GGUF with its 4-bit blocks widened to `weights` (`f16`, `q8_0`) by llama.cpp's own quantiser,
    once, into the cache; `q4_1` is the shipped file itself.

    The values stay those of the 4-bit blocks (f16 holds each one to within its rounding), so an adapter trained
    on the transformers copy still fits; what changes is the speed: on this lab's 2-core CPU llama.cpp read
    prompts at 432 tokens/s from f16, 240 from q8_0 and 193 from q4_1, and wrote 40, 49 and 60 tokens/s
    (`bench/generate.py --llama-cpp q4_1,q8_0,f16`); a game reads far more prompt tokens than it writes.
    """
    source = gguf_path()
    if weights == "q4_1":
        return source
    import ctypes

    import llama_cpp
    from llama_cpp._utils import suppress_stdout_stderr

    types = {"f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16, "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}
    if weights not in types:
        raise LabError(f"unknown llama.cpp weights '{weights}' (choose from q4_1, {', '.join(types)})")
    target = cache_dir() / f"{source.stem}.{weights}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = types[weights]
    params.allow_requantize = True
    params.nthread = _cpu_threads()
    try:
        with suppress_stdout_stderr(disable=False):  # llama.cpp logs every tensor it converts
            failed = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
        if failed:
            raise LabError(f"llama.cpp could not convert {source} to {weights}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


# ----- the adapter, converted once ----------------------------------------------------------------------------
def lora_gguf(adapter: str | Path, base_file: Path | None = None) -> Path:
    """The LoRA adapter folder as llama.cpp's adapter GGUF, written once into the cache (keyed by the adapter's
    weights) and reused; a LabError names what llama.cpp cannot apply."""
    folder = Path(adapter)
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        raise LabError(f"{folder}: the llama.cpp engine reads adapter_model.safetensors, which is missing")
    digest = hashlib.sha256(CONVERSION.encode() + weights.read_bytes()).hexdigest()[:20]
    target = cache_dir() / "lora-gguf" / f"{digest}.gguf"
    if target.is_file():
        return target
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    _check_lora(folder, config)
    base = _base_shape(base_file or gguf_path())
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        _write_lora(weights, config, base, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _check_lora(folder: Path, config: dict[str, Any]) -> None:
    unsupported = [key for key in ("modules_to_save", "rank_pattern", "alpha_pattern") if config.get(key)]
    if config.get("use_dora"):
        unsupported.append("use_dora")
    if config.get("peft_type", "LORA") != "LORA":
        unsupported.append(f"peft_type {config.get('peft_type')}")
    if unsupported:
        raise LabError(f"{folder}/adapter_config.json: the llama.cpp engine applies plain LoRA only, not "
                       f"{', '.join(unsupported)}: play it with engine=transformers")


def _base_shape(path: Path) -> dict[str, Any]:
    """What the conversion needs of the base GGUF: its architecture, layer count and attention heads."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    arch = fields["general.architecture"].contents()
    if arch != "llama":
        raise LabError(f"{path}: the llama.cpp engine converts adapters for llama models, not {arch}")
    return {
        "blocks": int(fields["llama.block_count"].contents()),
        "heads": int(fields["llama.attention.head_count"].contents()),
        "kv_heads": int(fields["llama.attention.head_count_kv"].contents()),
    }


def _rope_rows(weight: Any, heads: int) -> Any:
    """The rows of a q or k projection in llama.cpp's rotary layout: Hugging Face rotates each head's two halves,
    llama.cpp interleaved pairs (the permutation llama.cpp's own converter applies to these weights)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _write_lora(weights: Path, config: dict[str, Any], base: dict[str, Any], out: Path) -> None:
    import gguf
    from safetensors.numpy import load_file

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, base["blocks"])
    tensors = load_file(str(weights))
    rank = int(config["r"])
    alpha = float(config["lora_alpha"])
    if config.get("use_rslora"):  # llama.cpp scales by alpha / rank; rsLoRA by alpha / sqrt(rank)
        alpha *= math.sqrt(rank)
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for key in sorted(tensors):
        if ".lora_A." not in key:
            if ".lora_B." not in key:
                raise LabError(f"{weights}: tensor {key} is not a LoRA A or B matrix: play it with engine=transformers")
            continue
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        name = names.get_name(f"{module}.weight", try_suffixes=(".weight",))
        b_key = key.replace(".lora_A.", ".lora_B.")
        if name is None or b_key not in tensors:
            raise LabError(f"{weights}: no llama.cpp tensor for {module}: play it with engine=transformers")
        lora_a, lora_b = tensors[key].astype("float32"), tensors[b_key].astype("float32")
        if module.endswith("q_proj"):
            lora_b = _rope_rows(lora_b, base["heads"])
        elif module.endswith("k_proj"):
            lora_b = _rope_rows(lora_b, base["kv_heads"])
        writer.add_tensor(f"{name}.lora_a", lora_a)
        writer.add_tensor(f"{name}.lora_b", lora_b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


class StateCache:
    """llama.cpp states of prompts already read, kept by their token ids in least-recently-used order within a
    byte budget (the llama.cpp side of `engine.llm.prefix_cache`, with the same counters for benchmarks).

    Only the sequence's own keys and values are copied (llama.cpp's per-sequence state API, ~23 kB a token here):
    `Llama.save_state` would also copy a logits buffer of 512 rows, 100 MB, at every turn.
    """

    def __init__(self, budget_bytes: int = DEFAULT_STATE_BUDGET) -> None:
        self.budget_bytes = budget_bytes
        self._states: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
        self.reused_tokens = 0  # prompt tokens found in the cache or the context
        self.read_tokens = 0  # prompt tokens llama.cpp had to read

    def __len__(self) -> int:
        return len(self._states)

    def read(self, llama: Any, ids: list[int]) -> None:
        """Bring the context to `ids[:-1]` from the state sharing the longest prefix, then read the rest."""
        import ctypes

        import llama_cpp

        held = common_prefix(tuple(llama.input_ids[: llama.n_tokens].tolist()), ids)
        best, best_n = longest(self._states, ids)
        if best is not None and best_n > held:
            data = self._states[best]
            self._states.move_to_end(best)
            llama._ctx.kv_cache_seq_rm(0, 0, -1)
            buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
            if llama_cpp.llama_state_seq_set_data(llama._ctx.ctx, buffer, len(data), 0) != len(data):
                raise LabError("llama.cpp could not restore a cached prompt")
            llama.input_ids[: len(best)] = best
            held = best_n
        held = min(held, len(ids) - 1)  # the last prompt token is always read: its logits start the reply
        llama.n_tokens = held  # `eval` drops the context's tokens from here on before reading
        self.reused_tokens += held
        self.read_tokens += len(ids) - held
        llama.eval(ids[held:])

    def keep(self, llama: Any) -> None:
        """Cache the context's state (prompt and reply) for the game's next turn; a state it extends is dropped."""
        import ctypes

        import llama_cpp

        ids = tuple(llama.input_ids[: llama.n_tokens].tolist())
        for key in [k for k in self._states if len(k) <= len(ids) and ids[: len(k)] == k]:
            del self._states[key]
        size = llama_cpp.llama_state_seq_get_size(llama._ctx.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(llama._ctx.ctx, buffer, size, 0)
        self._states[ids] = ctypes.string_at(buffer, written)
        total = sum(len(data) for data in self._states.values())
        while total > self.budget_bytes and self._states:  # a budget of 0 keeps nothing
            _, old = self._states.popitem(last=False)
            total -= len(old)

    def clear(self) -> None:
        self._states.clear()


# ----- the backend --------------------------------------------------------------------------------------------
class LlamaCppBackend(Backend):
    """The embedded model (with an optional LoRA adapter) on llama.cpp, behind the same interface as `LocalBackend`."""

    provider = "local"
    engine = "llama.cpp"

    def __init__(self, name: str, model_dir: str, adapter: str | None = None, *, threads: int | None = None,
                 context: int = DEFAULT_CONTEXT, state_budget: int = DEFAULT_STATE_BUDGET, seed: int = 0,
                 weights: str = DEFAULT_WEIGHTS) -> None:
        if not available():
            raise LabError(f"engine=llama.cpp needs llama-cpp-python: {INSTALL_HINT}")
        if not is_embedded_folder(model_dir):
            raise LabError(f"engine=llama.cpp plays the embedded model only (its GGUF), not {model_dir}: "
                           "use engine=transformers")
        import numpy as np
        from llama_cpp import Llama
        from transformers import AutoTokenizer

        self.model = name
        tokenizer_dir = adapter if adapter and (Path(adapter) / "tokenizer_config.json").exists() else model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        lora = str(lora_gguf(adapter)) if adapter else None
        self.llama = Llama(model_path=str(base_gguf(weights)), lora_path=lora, n_ctx=context, n_batch=512,
                           n_threads=threads or _cpu_threads(), n_threads_batch=threads or _cpu_threads(),
                           seed=seed, flash_attn=FLASH_ATTENTION, verbose=False)
        if self.llama.n_vocab() < len(self.tokenizer):
            raise LabError(f"the GGUF has {self.llama.n_vocab()} tokens but the tokenizer {len(self.tokenizer)}")
        self.stop_ids = {self.tokenizer.eos_token_id, self.llama.token_eos()}
        self.prefix_cache = StateCache(state_budget)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()  # one llama.cpp context: one reply at a time
        self._compiler = GrammarCompiler(self.tokenizer)
        self.grammar_output = grammar_available()

    # ----- the Backend interface -----------------------------------------------------------------------
    def chat(self, messages: list[Message], options: GenerationOptions | None = None) -> ChatResult:
        return self._reply(messages, options or GenerationOptions())

    def chat_stream(self, messages: list[Message], on_text: TextCallback,
                    options: GenerationOptions | None = None) -> ChatResult:
        return self._reply(messages, options or GenerationOptions(), on_text=on_text)

    def check_grammar(self, grammar: str) -> None:
        self._compiler.check(grammar)

    def chat_grammar(self, messages: list[Message], grammar: str, options: GenerationOptions | None = None,
                     on_text: TextCallback | None = None) -> ChatResult:
        if not self.grammar_output:
            raise LabError(f"local model {self.model}: decoding under a grammar needs {GRAMMAR_HINT}")
        return self._reply(messages, options or GenerationOptions(), grammar, on_text)

    # ----- generation ------------------------------------------------------------------------------------
    def _reply(self, messages: list[Message], options: GenerationOptions, grammar: str | None = None,
               on_text: TextCallback | None = None) -> ChatResult:
        import numpy as np

        ids = list(self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                      return_dict=True)["input_ids"])
        if len(ids) + options.max_tokens > self.llama.n_ctx():
            raise LabError(f"local model {self.model}: a {len(ids)}-token prompt and {options.max_tokens} new tokens "
                           f"do not fit the llama.cpp context of {self.llama.n_ctx()}")
        cancel = current_cancel()
        started = time.perf_counter()
        matcher = self._compiler.matcher(grammar) if grammar else None
        out: list[int] = []
        shown = ""
        if matcher is not None:  # a reply's forced opening (`MOVES: `) is read with the prompt
            opening = matcher.compute_ff_tokens()[: options.max_tokens]
            if opening and matcher.consume_tokens(opening):
                out.extend(opening)
        with self._lock:
            self.prefix_cache.read(self.llama, ids + out)
            n_vocab = self.llama.n_vocab()
            while len(out) < options.max_tokens:
                if cancel is not None and cancel.is_set():
                    raise KeyboardInterrupt
                logits = np.ctypeslib.as_array(self.llama._ctx.get_logits_ith(-1), shape=(n_vocab,)).copy()
                if matcher is not None:
                    logits[~allowed_tokens(matcher, n_vocab)] = -np.inf
                token = self._pick(logits, options.temperature)
                out.append(token)
                if token in self.stop_ids:
                    break
                step = [token]
                if matcher is not None:
                    matcher.consume_token(token)
                    # tokens the grammar leaves no choice about: read with this one in one call, not written singly
                    forced = matcher.compute_ff_tokens()[: options.max_tokens - len(out)]
                    if forced and matcher.consume_tokens(forced):
                        out.extend(forced)
                        step.extend(forced)
                if on_text is not None:
                    text = self.tokenizer.decode(out, skip_special_tokens=True)
                    if len(text) > len(shown):
                        on_text(text[len(shown):])
                        shown = text
                if matcher is not None and matcher.is_stopped():  # only the end of the reply may follow
                    out.append(self.tokenizer.eos_token_id)  # counted, as the transformers engine writes it
                    break
                self.llama.eval(step)
            self.prefix_cache.keep(self.llama)
        text = self.tokenizer.decode([t for t in out if t not in self.stop_ids], skip_special_tokens=True).strip()
        for stop in options.stop:
            text = text.split(stop, 1)[0]
        latency = (time.perf_counter() - started) * 1000.0
        return ChatResult(text, len(ids), len(out), latency_ms=latency, cost_usd=0.0, model=self.model)

    def _pick(self, logits: Any, temperature: float) -> int:
        """Greedy at temperature 0; otherwise a draw from the top-p (0.95) tokens at that temperature."""
        import numpy as np

        if temperature <= 0:
            return int(np.argmax(logits))
        scaled = (logits - logits.max()) / temperature
        probs = np.exp(scaled)
        probs /= probs.sum()
        order = np.argsort(-probs)
        keep = order[: int(np.searchsorted(np.cumsum(probs[order]), TOP_P)) + 1]
        return int(self._rng.choice(keep, p=probs[keep] / probs[keep].sum()))


def _cpu_threads() -> int:
    """As many threads as the process may use cores (what torch uses on the transformers engine)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_NOTED: set[str] = set()


def note_fallback(why: str) -> None:
    """One `note:` line a process for each reason the fast engine was not used (never silently)."""
    if why not in _NOTED:
        _NOTED.add(why)
        print(f"note: the embedded model plays on transformers, not llama.cpp: {why}", file=sys.stderr)
