"""The local transformers backend: the embedded SmolLM2 for real (loaded once), the batcher, LoRA adapters."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from engine.errors import LabError
from engine.llm.base import ChatResult, GenerationOptions, cancel_on
from engine.llm.local import Batcher, StopOnEvent, release, shared_backend

SHORT = GenerationOptions(max_tokens=12, temperature=0.0)  # the CPU is shared: keep generation short
HI = [{"role": "user", "content": "Say hello."}]
LONG = [{"role": "system", "content": "You are a travel agent."}, {"role": "user", "content": "Which city is cheaper for a team trip of twelve people in late spring, Lisbon or Berlin or Krakow?"}]


@pytest.fixture(scope="module")
def backend():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared, busy CPU one thread is several times faster than contended ones
    yield shared_backend("", engine="transformers")
    torch.set_num_threads(threads)


def test_embedded_model_chats_and_counts_tokens(backend):
    result = backend.chat(HI, SHORT)
    assert result.text and 0 < result.output_tokens <= 12
    assert result.input_tokens > 5 and result.cost_usd == 0.0 and result.model == "embedded"
    assert shared_backend("embedded", engine="transformers") is backend  # one shared instance per model, so players batch together


def test_batch_uses_left_padding_and_answers_each(backend):
    short, long = backend.chat_batch([HI, LONG], SHORT)
    assert short.text and long.text
    assert short.input_tokens < long.input_tokens  # padding is not counted as input
    expected = backend.tokenizer.apply_chat_template(LONG, add_generation_prompt=True, tokenize=True, return_dict=True)
    assert long.input_tokens == len(expected["input_ids"])


def test_stream_pieces_make_the_text(backend):
    pieces: list[str] = []
    result = backend.chat_stream(HI, pieces.append, SHORT)
    assert len(pieces) > 1 and "".join(pieces).strip() == result.text


def test_concurrent_chats_share_generate_calls(backend):
    backend.batcher.batch_sizes.clear()
    backend.batcher.wait_s = 0.3
    results: list[ChatResult] = []
    barrier = threading.Barrier(3)

    def game() -> None:
        barrier.wait()
        results.append(backend.chat(HI, SHORT))

    threads = [threading.Thread(target=game) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        backend.batcher.wait_s = 0.02
    assert len(results) == 3 and all(r.text for r in results)
    assert sum(backend.batcher.batch_sizes) == 3 and max(backend.batcher.batch_sizes) >= 2


def test_batcher_groups_equal_options_and_reports_failures():
    calls: list[tuple[int, GenerationOptions]] = []

    def run(convs, options, _grammars, _cancels):
        calls.append((len(convs), options))
        if options.max_tokens == 13:
            raise RuntimeError("out of memory")
        time.sleep(0.05)
        return [ChatResult(c[0]["content"].upper()) for c in convs]

    batcher = Batcher(run, max_batch=8, wait_s=0.2)
    out: dict[str, object] = {}

    def submit(text: str, options: GenerationOptions) -> None:
        try:
            out[text] = batcher.submit([{"role": "user", "content": text}], options).text
        except RuntimeError as exc:
            out[text] = exc

    a, b = GenerationOptions(max_tokens=5), GenerationOptions(max_tokens=13)
    threads = [threading.Thread(target=submit, args=(t, o)) for t, o in (("x", a), ("y", a), ("z", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out["x"] == "X" and out["y"] == "Y" and isinstance(out["z"], RuntimeError)
    assert sorted(n for n, _ in calls) == [1, 2]  # x and y together, z alone (other options)


def test_batcher_waits_for_the_games_of_the_last_batch():
    """Games come back from their own work at different times: a later round is not split at the first arrivals."""

    def run(convs, options, _grammars, _cancels):
        time.sleep(0.05)
        return [ChatResult("ok") for _ in convs]

    batcher = Batcher(run, max_batch=8, wait_s=0.02, max_wait_s=1.0)

    def game(i: int) -> None:
        for _ in range(3):
            batcher.submit([{"role": "user", "content": str(i)}], GenerationOptions())
            time.sleep(0.04 * i)  # game i's own work takes longer than the batcher's short wait

    threads = [threading.Thread(target=game, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert batcher.batch_sizes[-2:] == [4, 4]  # after the first round, every round is one batch of all four games


def test_missing_folder_is_a_lab_error():
    from engine.llm.local import LocalBackend

    with pytest.raises(LabError, match="no model folder"):
        LocalBackend("/nonexistent/model")
    with pytest.raises(LabError, match="no LoRA adapter"):
        LocalBackend("", "/nonexistent/adapter")



def test_a_folder_that_is_not_a_model_is_refused_before_loading(tmp_path):
    from engine.llm.embedded import embedded_model_dir
    from engine.llm.local import LocalBackend

    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(LabError, match=r"is not a Hugging Face model folder: it has no config.json"):
        LocalBackend(str(tmp_path))
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(LabError, match=r"config.json: not a readable JSON config"):
        LocalBackend(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(LabError, match=r"has config.json but no weights"):
        LocalBackend(str(tmp_path))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(LabError, match=r"is not a LoRA adapter folder: it has adapter_config.json but no weights"):
        LocalBackend(str(embedded_model_dir()), str(adapter))

def test_lora_adapter_loads_with_plus_syntax(tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.llm.embedded import embedded_model_dir
    from engine.llm.specs import make_backend, parse_spec

    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32)
    layer = "model.layers.0.self_attn.q_proj.weight"
    before = base.state_dict()[layer].clone()
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], lora_alpha=4))
    for name, weight in peft_model.named_parameters():
        if "lora_B" in name:  # a fresh adapter is a no-op (B = 0): give it something to merge
            torch.nn.init.constant_(weight, 0.01)
    peft_model.save_pretrained(tmp_path / "adapter")
    spec = f"{embedded_model_dir()}+{tmp_path / 'adapter'}"
    tuned = make_backend(parse_spec("local", spec + "?dtype=float32"))
    assert not isinstance(tuned.net, PeftModel)  # merged into the weights for inference
    assert not torch.equal(tuned.net.state_dict()[layer], before)
    quantised = make_backend(parse_spec("local", spec + "?dtype=int8"))  # merged, then int8
    assert quantised.dtype == "int8" and quantised is not tuned
    assert quantised.chat_batch([HI], GenerationOptions(max_tokens=3, temperature=0.0))[0].output_tokens > 0
    release(str(tmp_path / "adapter"))  # both backends of the adapter are forgotten: the next spec loads afresh
    assert make_backend(parse_spec("local", spec + "?dtype=float32")) is not tuned


def test_a_later_turn_reads_only_its_new_tokens_and_writes_what_a_fresh_read_writes():
    """In float32: int8 weights quantise each call's activations with one scale for the whole batch, so a row's
    text may change with the rows beside it and with padding (the README says so)."""
    backend = shared_backend("", dtype="float32")
    options = GenerationOptions(max_tokens=16, temperature=0.0)
    long_len = backend.chat_batch([LONG], options)[0].input_tokens
    later = LONG + [{"role": "assistant", "content": "Krakow."}, {"role": "user", "content": "And for eight people?"}]
    cache = backend.prefix_cache
    reused = cache.reused_tokens
    cached = [r.text for r in backend.chat_batch([HI, later], options)]  # left-padded: rows of unequal length
    assert cache.reused_tokens - reused >= long_len - 1  # LONG's whole prompt was not read again
    cache.clear()
    assert [r.text for r in backend.chat_batch([HI, later], options)] == cached and all(cached)


def test_dtype_option_loads_bfloat16_and_rejects_unknown_names():
    from engine.llm.local import LocalBackend
    from engine.llm.specs import make_backend, parse_spec

    half = make_backend(parse_spec("local", "?dtype=bfloat16"))
    assert next(half.net.parameters()).dtype == torch.bfloat16
    assert half.chat_batch([HI], GenerationOptions(max_tokens=3, temperature=0.0))[0].output_tokens > 0
    with pytest.raises(LabError, match="unknown dtype 'int3'"):
        LocalBackend("", dtype="int3")


def test_cpu_default_is_float32_and_int8_is_asked_by_name(backend):
    """`auto` on a CPU keeps full precision (int8 loses a small model's training); `int8` quantises every Linear
    layer; int8 is refused on a GPU."""
    from engine.llm.local import LocalBackend, _int8_weights

    quantised = torch.ao.nn.quantized.dynamic.Linear
    assert backend.dtype == "float32" and not any(isinstance(m, quantised) for m in backend.net.modules())
    small = LocalBackend("", dtype="int8")
    linears = [m for m in small.net.modules() if isinstance(m, quantised)]
    assert small.dtype == "int8" and len(linears) >= 30 * 7  # every attention and MLP projection of the 30 layers
    assert _int8_weights("auto", "cpu") is False and _int8_weights("auto", "cuda") is False
    with pytest.raises(LabError, match="CPU only"):
        _int8_weights("int8", "cuda")


def test_four_bit_without_cuda_falls_back_with_a_warning():
    from engine.llm.local import _four_bit_config

    with pytest.warns(UserWarning, match="CUDA"):
        assert _four_bit_config("cpu") is None


def test_stop_on_event_marks_only_the_rows_whose_event_is_set():
    first, second = threading.Event(), threading.Event()
    stop = StopOnEvent([first, None, second])
    ids = torch.zeros((3, 4), dtype=torch.long)
    assert stop(ids, None).tolist() == [False, False, False]
    second.set()
    assert stop(ids, None).tolist() == [False, False, True]


def test_a_cancelled_request_raises_keyboard_interrupt_and_hands_its_event_to_generate():
    seen: list[list[threading.Event | None]] = []
    cancel = threading.Event()

    def run(convs, options, _grammars, cancels):
        seen.append(cancels)
        cancel.set()  # the user pressed Escape while the batch was generating
        return [ChatResult("partial") for _ in convs]

    batcher = Batcher(run, wait_s=0.0)
    with cancel_on(cancel), pytest.raises(KeyboardInterrupt):
        batcher.submit(HI, SHORT)
    assert seen == [[cancel]]
    assert batcher.submit(HI, SHORT).text == "partial"  # outside the block: no event, the reply is returned


@pytest.mark.slow
@pytest.mark.parametrize("streamed", [False, True])
def test_cancel_stops_the_generate_call_within_a_second(backend, streamed):
    """Without the stopping criterion the model would write all 400 tokens (tens of seconds on this CPU)."""
    long = GenerationOptions(max_tokens=400, temperature=0.0)
    ask = [{"role": "user", "content": "Write a very long story about a lighthouse keeper, with many chapters."}]
    cancel = threading.Event()
    timer = threading.Timer(1.5, cancel.set)
    pieces: list[str] = []
    timer.start()
    started = time.perf_counter()
    with cancel_on(cancel), pytest.raises(KeyboardInterrupt):
        if streamed:
            backend.chat_stream(ask, pieces.append, long)
        else:
            backend.chat(ask, long)
    stopped_after = time.perf_counter() - started - 1.5
    assert stopped_after < 1.0, f"generate ran on {stopped_after:.1f} s after the cancel"
    assert not streamed or pieces  # it was writing when cancelled
    assert not backend._lock.locked()  # the generate thread is done: the next request does not wait for it
