"""Local transformers models: the embedded SmolLM2 by default, or any Hugging Face folder with an optional LoRA.

Many games run at once in evaluation, each in its own thread, and each asks the model for one reply at a time.
One forward pass over a batch costs little more than over a single prompt on the CPU, so the requests of all
threads are gathered by a `Batcher` and answered by a single left-padded `generate` call. Share one backend per
model between all those players: `shared_backend(path, adapter)` returns the same `LocalBackend` for the same
model, and every `LocalBackend.chat` call goes through its batcher.

Each prompt is read through a `PrefixCache` (`engine.llm.prefix_cache`): a game's next turn reads only its new
exchange and belief line, not the scenario and the dialogue again.

A reply may be decoded under a grammar (`chat_grammar`, `engine.llm.grammar`): each request in a batch keeps
its own, so games of different scenarios still share a generate call.

`shared_backend` also picks the engine (`engine=`): this transformers backend, or llama.cpp for the embedded model
where llama-cpp-python is installed (`engine.llm.llamacpp`, behind the same `Backend` interface).

CUDA is used when present; `load_in_4bit=True` quantises with bitsandbytes on CUDA, and falls back to full
precision (with a warning) where either is missing.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import LabError
from engine.llm.base import Backend, ChatResult, GenerationOptions, Message, TextCallback, current_cancel
from engine.llm.embedded import EMBEDDED_ALIASES, resolve_model_path
from engine.llm.grammar import INSTALL_HINT, GrammarCompiler, GrammarLogits
from engine.llm.grammar import available as grammar_available
from engine.llm.prefix_cache import PrefixCache, stack

DEFAULT_MAX_BATCH = 16
DEFAULT_WAIT_S = 0.02  # how long the batcher always waits for other threads' requests before generating
MAX_WAIT_S = 0.5  # how long it waits for the company the last batch had (games that are still playing)
DTYPES = ("auto", "int8", "float32", "bfloat16", "float16")  # the `dtype=` spec option


@dataclass
class _Request:
    messages: list[Message]
    options: GenerationOptions
    grammar: str | None = None
    cancel: threading.Event | None = None  # set: `generate` stops this row at its next token
    future: Future = field(default_factory=Future)


class StopOnEvent:
    """A transformers stopping criterion: row i is done once `events[i]` is set (None: never).

    `generate` checks it after every token, so a cancelled request stops within a token or two instead of writing
    its whole reply; the other rows of a batch go on.
    """

    def __init__(self, events: list[threading.Event | None]) -> None:
        self.events = events

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.tensor([e is not None and e.is_set() for e in self.events], device=input_ids.device)


class Batcher:
    """Gathers chat requests from many threads and answers those with equal options in one batched call.

    A request waits `wait_s` for company, and then up to `max_wait_s` more while fewer requests are queued than
    the last batch held: concurrent games come back from their own work (the target's reply, the belief update,
    the store) at slightly different times, and a batch cut at the first arrivals would split every later round
    in two. A lone player's batch holds one, so it never waits more than `wait_s`. While a batch is being
    generated, new requests queue up and form the next batch, so concurrent games advance together.
    """

    def __init__(self, run_batch, max_batch: int = DEFAULT_MAX_BATCH, wait_s: float = DEFAULT_WAIT_S,
                 max_wait_s: float = MAX_WAIT_S) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.max_wait_s = max(wait_s, max_wait_s)
        self._expected = 1  # the size of the last batch: the company worth waiting for
        self.batch_sizes: list[int] = []  # every batch it ran, for tests and benchmarks
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._worker: threading.Thread | None = None

    def submit(self, messages: list[Message], options: GenerationOptions, grammar: str | None = None) -> ChatResult:
        """The reply, or KeyboardInterrupt when this thread's `cancel_on` event was set before it was done."""
        request = _Request(messages, options, grammar, current_cancel())
        with self._cond:
            self._pending.append(request)
            if self._worker is None:
                self._worker = threading.Thread(target=self._loop, name="ptom-batcher", daemon=True)
                self._worker.start()
            self._cond.notify_all()
        result = request.future.result()
        if request.cancel is not None and request.cancel.is_set():
            raise KeyboardInterrupt
        return result

    def _take(self) -> list[_Request] | None:
        with self._cond:
            while not self._pending:
                if not self._cond.wait(timeout=2.0) and not self._pending:
                    self._worker = None  # idle: the next submit starts a fresh worker
                    return None
            start = time.monotonic()
            expected = min(self.max_batch, self._expected)
            while len(self._pending) < self.max_batch:
                waited = time.monotonic() - start
                deadline = self.max_wait_s if len(self._pending) < expected else self.wait_s
                if waited >= deadline:
                    break
                self._cond.wait(deadline - waited)
            options = self._pending[0].options
            batch = [r for r in self._pending if r.options == options][: self.max_batch]
            for r in batch:
                self._pending.remove(r)
            self._expected = len(batch)
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            self.batch_sizes.append(len(batch))
            try:
                results = self.run_batch([r.messages for r in batch], batch[0].options, [r.grammar for r in batch],
                                         [r.cancel for r in batch])
            except BaseException as exc:  # every waiting game learns of the failure
                for r in batch:
                    r.future.set_exception(exc)
                continue
            for r, result in zip(batch, results, strict=True):
                r.future.set_result(result)


def split_local_spec(arg: str) -> tuple[str, str | None]:
    """`PATH+ADAPTER` -> (PATH, ADAPTER); '' -> the embedded model. The last '+' separates the adapter."""
    path, sep, adapter = arg.rpartition("+")
    if not sep:
        return arg, None
    return path, adapter or None


def _resolve(path: str, adapter: str | None) -> tuple[str, str | None]:
    """Checked folders for a model and adapter; an adapter-only folder brings its base model along."""
    model_dir = resolve_model_path(path or None)
    folder = Path(model_dir)
    if not folder.is_dir():
        raise LabError(f"no model folder at '{model_dir}' (give a local Hugging Face folder, or leave it empty for the embedded model)")
    if adapter is None and (folder / "adapter_config.json").exists() and not (folder / "config.json").exists():
        base = adapter_base(folder)
        adapter, model_dir = str(folder), resolve_model_path(base or None)
        if not Path(model_dir).is_dir():
            raise LabError(f"{folder}/adapter_config.json: base model '{base}' is not a local folder")
    if adapter is not None and not (Path(adapter) / "adapter_config.json").exists():
        raise LabError(f"no LoRA adapter at '{adapter}' (expected {adapter}/adapter_config.json)")
    _check_files(Path(model_dir), "config.json", MODEL_WEIGHTS, "a Hugging Face model folder")
    if adapter is not None:
        _check_files(Path(adapter), "adapter_config.json", ADAPTER_WEIGHTS, "a LoRA adapter folder")
    return model_dir, adapter


MODEL_WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "pytorch_model.bin.index.json")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def _check_files(folder: Path, config: str, weights: tuple[str, ...], what: str) -> None:
    """Refuse a folder that is not `what` before torch and transformers load (seconds, then an opaque error)."""
    if not (folder / config).is_file():
        raise LabError(f"'{folder}' is not {what}: it has no {config}")
    _json_config(folder / config)
    if not any(next(folder.glob(pattern), None) for pattern in weights):
        raise LabError(f"'{folder}' is not {what}: it has {config} but no weights ({', '.join(weights)})")


def adapter_base(folder: str | Path) -> str:
    """The base model a LoRA adapter folder names (its adapter_config.json), '' when it names none."""
    return _json_config(Path(folder) / "adapter_config.json").get("base_model_name_or_path") or ""


def _json_config(path: Path) -> dict:
    """A model's JSON config file as a mapping, or a LabError naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabError(f"{path}: not a readable JSON config ({exc})") from None
    if not isinstance(data, dict):
        raise LabError(f"{path}: not a JSON config (a mapping of settings)")
    return data


def backend_name(path: str, adapter: str | None) -> str:
    """The model name a local backend stores with every turn, whichever engine plays it."""
    name = "embedded" if path in EMBEDDED_ALIASES else path
    # an adapter-only folder given as the path names itself; only an explicit +ADAPTER is added
    return f"{name}+{adapter}" if adapter else name


class LocalBackend(Backend):
    provider = "local"
    engine = "transformers"

    def __init__(
        self,
        path: str = "",
        adapter: str | None = None,
        *,
        load_in_4bit: bool = False,
        dtype: str = "auto",
        device: str | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        wait_s: float = DEFAULT_WAIT_S,
    ) -> None:
        self.model = backend_name(path, adapter)
        model_dir, adapter = _resolve(path, adapter)  # before the heavy imports: a bad path fails fast
        if dtype not in DTYPES:
            raise LabError(f"unknown dtype '{dtype}' (choose from {', '.join(DTYPES)})")
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()  # a tqdm bar per load would cut through the CLI's and TUI's own
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        started = time.perf_counter()
        tokenizer_dir = adapter if adapter and (Path(adapter) / "tokenizer_config.json").exists() else model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        int8 = _int8_weights(dtype, self.device)
        kwargs: dict[str, Any] = {"dtype": torch.float32 if int8 else _torch_dtype(dtype, self.device)}
        if load_in_4bit:
            quant = _four_bit_config(self.device)
            if quant is not None:
                kwargs["quantization_config"] = quant
                kwargs["device_map"] = {"": 0}
        model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
        if "device_map" not in kwargs:
            model = model.to(self.device)
        if adapter:
            from peft import PeftModel

            with warnings.catch_warnings():  # peft calls a renamed transformers helper: nothing the user can act on
                warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
                model = PeftModel.from_pretrained(model, adapter)
            if "quantization_config" not in kwargs:  # folded into the weights: the same model, less work per token
                model = model.merge_and_unload()
        if int8:
            model = _quantize_int8(model)
        self.dtype = "int8" if int8 else str(kwargs["dtype"]).removeprefix("torch.")
        self.net = model.eval()
        self.prefix_cache = PrefixCache()
        self.load_s = time.perf_counter() - started
        self._lock = threading.Lock()  # one generate at a time on this model
        self.batcher = Batcher(self._generate, max_batch, wait_s)
        self._compiler: Any = None  # grammars for this tokenizer, made at the first grammar asked for
        self.grammar_output = grammar_available()

    # ----- the Backend interface -----------------------------------------------------------------------
    def chat(self, messages: list[Message], options: GenerationOptions | None = None) -> ChatResult:
        """Through the batcher: concurrent callers share one generate call."""
        return self.batcher.submit(messages, options or GenerationOptions())

    def check_grammar(self, grammar: str) -> None:
        """A LabError naming the cause when `grammar` cannot be used with this model's tokenizer."""
        self._grammar_compiler().check(grammar)

    def chat_grammar(
        self,
        messages: list[Message],
        grammar: str,
        options: GenerationOptions | None = None,
        on_text: TextCallback | None = None,
    ) -> ChatResult:
        """Like `chat` (`chat_stream` with `on_text`), with every token of the reply allowed by the Lark `grammar`."""
        if not self.grammar_output:
            raise LabError(f"local model {self.model}: decoding under a grammar needs {INSTALL_HINT}")
        if on_text is not None:
            return self._stream(messages, on_text, options or GenerationOptions(), grammar)
        return self.batcher.submit(messages, options or GenerationOptions(), grammar)

    def _grammar_compiler(self) -> GrammarCompiler:
        if self._compiler is None:
            self._compiler = GrammarCompiler(self.tokenizer)
        return self._compiler

    def chat_batch(self, conversations, options: GenerationOptions | None = None) -> list[ChatResult]:
        options = options or GenerationOptions()
        out: list[ChatResult] = []
        for i in range(0, len(conversations), self.batcher.max_batch):
            out.extend(self._generate(list(conversations[i : i + self.batcher.max_batch]), options))
        return out

    def chat_stream(
        self, messages: list[Message], on_text: TextCallback, options: GenerationOptions | None = None
    ) -> ChatResult:
        return self._stream(messages, on_text, options or GenerationOptions())

    def _stream(
        self, messages: list[Message], on_text: TextCallback, options: GenerationOptions, grammar: str | None = None
    ) -> ChatResult:
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        started = time.perf_counter()
        output: dict[str, Any] = {}
        cancel = current_cancel()
        stop = threading.Event()  # set when the reader gives up (`on_text` raised), or by the caller's cancel

        def work() -> None:
            try:
                output["ids"] = self._run(inputs, options, streamer=streamer, grammars=[grammar], cancels=[stop])
            except Exception as exc:  # end the stream so the reader is not left waiting
                output["error"] = exc
                streamer.end()

        with self._lock:
            inputs = self._read([messages])
            thread = threading.Thread(target=work, daemon=True)
            thread.start()
            try:
                for piece in streamer:
                    if cancel is not None and cancel.is_set():
                        raise KeyboardInterrupt
                    if piece:
                        on_text(piece)
            except BaseException:
                stop.set()  # the generate thread stops at its next token instead of finishing the reply
                raise
            finally:
                thread.join()
        if cancel is not None and cancel.is_set():
            raise KeyboardInterrupt
        if "ids" not in output:
            raise LabError(f"local model {self.model}: generation failed: {output.get('error')}")
        return self._results(inputs, output["ids"], options, started)[0]

    # ----- generation ------------------------------------------------------------------------------------
    def _read(self, conversations: list[list[Message]]) -> dict[str, Any]:
        """`generate` inputs for the conversations, each read through the prefix cache up to its last token."""
        texts = [
            self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations
        ]
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        rows = [self.prefix_cache.prefill(self.net, row) for row in ids]
        return stack(rows, self.tokenizer.pad_token_id, self.device)

    def _run(self, inputs: dict[str, Any], options: GenerationOptions, streamer=None, grammars: list[str | None] | None = None,
             cancels: list[threading.Event | None] | None = None):
        import torch

        kwargs: dict[str, Any] = {
            "max_new_tokens": options.max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": options.temperature > 0,
        }
        if grammars and any(grammars):
            # the grammar's mask first, then temperature and top-p: sampling never meets a row masked empty
            from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

            compiler = self._grammar_compiler()
            processors: list[Any] = [GrammarLogits([compiler.matcher(g) if g else None for g in grammars])]
            if options.temperature > 0:
                processors += [TemperatureLogitsWarper(options.temperature), TopPLogitsWarper(0.95)]
            kwargs.update(logits_processor=LogitsProcessorList(processors), temperature=None, top_p=None, top_k=None)
        elif options.temperature > 0:
            kwargs.update(temperature=options.temperature, top_p=0.95)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if streamer is not None:
            kwargs["streamer"] = streamer
        if cancels and any(cancels):
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([StopOnEvent(cancels)])
        with torch.inference_mode():
            return self.net.generate(**inputs, **kwargs)

    def _generate(
        self,
        conversations: list[list[Message]],
        options: GenerationOptions,
        grammars: list[str | None] | None = None,
        cancels: list[threading.Event | None] | None = None,
    ) -> list[ChatResult]:
        started = time.perf_counter()
        with self._lock:
            inputs = self._read(conversations)
            ids = self._run(inputs, options, grammars=grammars, cancels=cancels)
        return self._results(inputs, ids, options, started)

    def _results(self, inputs: dict[str, Any], ids, options: GenerationOptions, started: float) -> list[ChatResult]:
        latency = (time.perf_counter() - started) * 1000.0
        prompt_len = inputs["input_ids"].shape[1]
        stop_ids = _as_set(self.net.generation_config.eos_token_id) | {self.tokenizer.eos_token_id}
        results = []
        for row, mask in zip(ids, inputs["attention_mask"], strict=True):
            new = row[prompt_len:].tolist()
            n_out = next((i + 1 for i, t in enumerate(new) if t in stop_ids), len(new))
            text = self.tokenizer.decode(new[:n_out], skip_special_tokens=True).strip()
            for stop in options.stop:
                text = text.split(stop, 1)[0]
            results.append(
                ChatResult(text, int(mask.sum()), n_out, latency_ms=latency, cost_usd=0.0, model=self.model)
            )
        return results


def _as_set(value) -> set[int]:
    if value is None:
        return set()
    return set(value) if isinstance(value, (list, tuple, set)) else {int(value)}


def _int8_weights(name: str, device: str) -> bool:
    """`int8` (asked for by name only): every Linear layer's weights in int8, activations quantised on the fly.

    Writing a token on a CPU is bound by reading the weights; int8 reads a quarter of float32's bytes and
    bench/generate.py found it faster batched and prompt-reading on this lab's 2-core CPU. It is not the default:
    one scale per weight tensor costs the 135M model too much, and a tutorial adapter's greedy replies under int8
    misspell moves and lose the trained policy (`bench/quality.py`: its replies on training prompts against the
    planner's, int8 and float32).
    """
    if name == "int8" and device != "cpu":
        raise LabError("dtype=int8 (dynamic int8 quantisation) runs on the CPU only: use dtype=bfloat16 on a GPU")
    return name == "int8"


def _quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantisation with PyTorch's own `quantize_dynamic` (weights per tensor, activations per call).

    PyTorch marks its quantised tensors deprecated in favour of torchao; on this CPU torchao's int8 path needs
    torch.compile to be fast, which costs minutes per load, so the built-in one is used and its notice hidden.
    """
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao\..*")
        warnings.filterwarnings("ignore", message=".*(deprecated|torchao).*")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _torch_dtype(name: str, device: str):
    """`auto` is float32 on a CPU and bfloat16 on a GPU (int8 only by name: `_int8_weights`).

    On a CPU with AVX512-BF16 (recent Xeon and EPYC) bfloat16 reads prompts 1.5-1.7x faster: bench/generate.py.
    """
    import torch

    if name == "auto":
        return torch.float32 if device == "cpu" else torch.bfloat16
    return getattr(torch, name)


def _four_bit_config(device: str):
    """A bitsandbytes 4-bit config, or None (with a warning) where CUDA or bitsandbytes is missing."""
    import importlib.util

    if device != "cuda":
        warnings.warn("4-bit loading needs a CUDA GPU: loading in full precision", stacklevel=3)
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        warnings.warn("4-bit loading needs bitsandbytes (pip install 'ptom-lab[gpu]'): loading in full precision", stacklevel=3)
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)


_SHARED: dict[tuple[str, str | None, bool, str, str], Backend] = {}
_SHARED_LOCK = threading.Lock()


def shared_backend(
    path: str = "", adapter: str | None = None, *, load_in_4bit: bool = False, dtype: str = "auto",
    engine: str = "auto",
) -> Backend:
    """The one backend for this model in this process: players that share it are batched together (transformers)
    or share its cached prompts (llama.cpp)."""
    engine = choose_engine(path, adapter, load_in_4bit=load_in_4bit, dtype=dtype, engine=engine)
    key = (path if path not in EMBEDDED_ALIASES else "", adapter, load_in_4bit, dtype, engine)
    with _SHARED_LOCK:
        if key not in _SHARED:
            if engine == "llama.cpp":
                from engine.llm.llamacpp import LlamaCppBackend

                model_dir, resolved = _resolve(path, adapter)
                _SHARED[key] = LlamaCppBackend(backend_name(path, adapter), model_dir, resolved)
            else:
                _SHARED[key] = LocalBackend(path, adapter, load_in_4bit=load_in_4bit, dtype=dtype)
        return _SHARED[key]


def choose_engine(path: str, adapter: str | None, *, load_in_4bit: bool = False, dtype: str = "auto",
                  engine: str = "auto") -> str:
    """`transformers` or `llama.cpp` for a local model's `engine=` option (`engine.llm.llamacpp`).

    `auto` takes llama.cpp for the embedded model (and its adapters) when llama-cpp-python is installed and the
    spec asks nothing only transformers does; where only the library is missing it says so in one `note:` line.
    """
    from engine.llm import llamacpp

    if engine not in llamacpp.ENGINES:
        raise LabError(f"unknown engine '{engine}' (choose from {', '.join(llamacpp.ENGINES)})")
    if engine == "transformers":
        return engine
    model_dir, _ = _resolve(path, adapter)
    blockers = [option for option, asked in (("4bit=1", load_in_4bit), (f"dtype={dtype}", dtype != "auto")) if asked]
    if not llamacpp.is_embedded_folder(model_dir):
        blockers.append(f"a model other than the embedded one ({model_dir})")
    if _cuda():
        blockers.append("a CUDA GPU")
    if engine == "llama.cpp":
        if blockers:
            raise LabError(f"engine=llama.cpp cannot play {', '.join(blockers)}: use engine=transformers")
        if not llamacpp.available():
            raise LabError(f"engine=llama.cpp needs llama-cpp-python: {llamacpp.INSTALL_HINT}")
        return engine
    if blockers:
        return "transformers"
    if not llamacpp.available():
        llamacpp.note_fallback(f"llama-cpp-python is not installed ({llamacpp.INSTALL_HINT})")
        return "transformers"
    return "llama.cpp"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def release(folder: str) -> None:
    """Forget the shared backends of a model or adapter folder: their weights and prefix cache go once the players
    holding them are done (`improve` releases each round's adapter when the next round's games are played)."""
    with _SHARED_LOCK:
        for key in [k for k in _SHARED if folder in (k[0], k[1])]:
            del _SHARED[key]
