"""The llama.cpp engine: the adapter conversion (always), the engine choice, and, where llama-cpp-python is
installed (`./setup.sh --llama-cpp`), the engine itself against the transformers engine on the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import LabError
from engine.llm import llamacpp
from engine.llm.base import GenerationOptions, cancel_on
from engine.llm.embedded import embedded_model_dir, gguf_path
from engine.llm.local import choose_engine

HAS_LLAMA_CPP = llamacpp.available()
needs_llama_cpp = pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed (./setup.sh --llama-cpp)")
LONG = [{"role": "system", "content": "You are a travel agent."},
        {"role": "user", "content": "Which city is cheaper for a team trip of twelve people in late spring, Lisbon or Berlin?"}]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A LoRA adapter on the embedded model with large random B matrices: unlike a fresh one (B = 0) it changes
    every reply, and q and k are among its targets, whose rows the conversion reorders."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "down_proj"],
                        layers_to_transform=[26, 27, 28, 29])
    model = get_peft_model(base, config)
    for name, weight in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=0.05)
    folder = tmp_path_factory.mktemp("lora") / "adapter"
    model.save_pretrained(folder)
    return folder


def test_the_adapter_becomes_llama_cpp_tensors_once(adapter, tmp_path, monkeypatch):
    import gguf
    from safetensors.numpy import load_file

    monkeypatch.setenv("PTOM_CACHE", str(tmp_path))
    path = llamacpp.lora_gguf(adapter, gguf_path())
    assert path.parent == tmp_path / "lora-gguf" and llamacpp.lora_gguf(adapter, gguf_path()) == path  # cached
    reader = gguf.GGUFReader(str(path))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == 8.0
    tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    assert len(tensors) == 4 * 4 * 2 and "blk.29.ffn_down.weight.lora_a" in tensors
    source = load_file(str(adapter / "adapter_model.safetensors"))
    prefix = "base_model.model.model.layers.29."
    v_b = source[prefix + "self_attn.v_proj.lora_B.weight"]
    assert np.array_equal(tensors["blk.29.attn_v.weight.lora_b"], v_b)  # v keeps its rows
    q_b = source[prefix + "self_attn.q_proj.lora_B.weight"]
    q_rows = tensors["blk.29.attn_q.weight.lora_b"]
    assert q_rows.shape == q_b.shape and not np.array_equal(q_rows, q_b)
    # each head's first half and second half interleaved, as llama.cpp's rotary embedding pairs them
    head = q_b[:64]
    assert np.array_equal(q_rows[:64:2], head[:32]) and np.array_equal(q_rows[1:64:2], head[32:])
    assert np.array_equal(tensors["blk.29.attn_q.weight.lora_a"], source[prefix + "self_attn.q_proj.lora_A.weight"])


def test_an_adapter_llama_cpp_cannot_apply_is_named(adapter, tmp_path, monkeypatch):
    import json
    import shutil

    monkeypatch.setenv("PTOM_CACHE", str(tmp_path))
    odd = tmp_path / "dora"
    shutil.copytree(adapter, odd)
    config = json.loads((odd / "adapter_config.json").read_text())
    (odd / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(LabError, match=r"plain LoRA only, not use_dora: play it with engine=transformers"):
        llamacpp.lora_gguf(odd, gguf_path())


def test_engine_choice():
    assert choose_engine("", None, engine="transformers") == "transformers"
    assert choose_engine("", None, dtype="int8") == "transformers"  # a transformers-only option: no notice
    with pytest.raises(LabError, match="unknown engine 'vllm'"):
        choose_engine("", None, engine="vllm")
    with pytest.raises(LabError, match=r"engine=llama.cpp cannot play dtype=bfloat16: use engine=transformers"):
        choose_engine("", None, dtype="bfloat16", engine="llama.cpp")


def test_without_llama_cpp_auto_says_so_once_and_plays_on_transformers(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what a machine without the extra sees: ImportError
    llamacpp._NOTED.clear()
    assert choose_engine("", None) == "transformers"
    assert choose_engine("embedded", None) == "transformers"
    err = capsys.readouterr().err
    assert err.count("note: the embedded model plays on transformers, not llama.cpp: llama-cpp-python is not "
                     "installed (./setup.sh --llama-cpp") == 1
    with pytest.raises(LabError, match=r"engine=llama.cpp needs llama-cpp-python: ./setup.sh --llama-cpp"):
        choose_engine("", None, engine="llama.cpp")


# ----- the engine itself ---------------------------------------------------------------------------------------
def _first_logits_transformers(messages, adapter=None):
    """The next-token logits after the prompt, from the transformers engine (float32, adapter merged)."""
    import torch

    from engine.llm.local import LocalBackend

    backend = LocalBackend("", str(adapter) if adapter else None, dtype="float32")
    ids = backend.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    with torch.inference_mode():
        out = backend.net(input_ids=torch.tensor([ids["input_ids"]]))
    return out.logits[0, -1].numpy()


def _first_logits_llama_cpp(backend, messages):
    ids = backend.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    backend.prefix_cache.read(backend.llama, list(ids["input_ids"]))
    return np.ctypeslib.as_array(backend.llama._ctx.get_logits_ith(-1), shape=(backend.llama.n_vocab(),)).copy()


@needs_llama_cpp
@pytest.mark.parametrize("with_adapter", [False, True])
def test_llama_cpp_reads_the_same_weights_and_adapter_as_transformers(adapter, with_adapter):
    """The GGUF's 4-bit blocks are what the transformers copy was dequantised from; llama.cpp also rounds the
    activations it multiplies them with, so the logits agree closely, not exactly. A wrong row order of q or k
    in the converted adapter would scramble attention in the adapted layers and break the agreement."""
    backend = llamacpp.LlamaCppBackend("embedded", str(embedded_model_dir()), str(adapter) if with_adapter else None)
    ours = _first_logits_llama_cpp(backend, LONG)
    theirs = _first_logits_transformers(LONG, adapter if with_adapter else None)
    assert np.corrcoef(ours, theirs)[0, 1] > 0.99
    assert set(np.argsort(-ours)[:3]) & {int(np.argmax(theirs))}


@pytest.fixture(scope="module")
def engine():
    return llamacpp.LlamaCppBackend("embedded", str(embedded_model_dir())) if HAS_LLAMA_CPP else None


@needs_llama_cpp
def test_a_later_turn_reads_only_its_new_tokens_and_writes_what_a_fresh_read_writes(engine):
    options = GenerationOptions(max_tokens=16, temperature=0.0)
    first = engine.chat(LONG, options)
    later = LONG + [{"role": "assistant", "content": first.text}, {"role": "user", "content": "And for eight people?"}]
    engine.chat([{"role": "user", "content": "Say hello."}], options)  # another game's turn in between
    cache = engine.prefix_cache
    reused = cache.reused_tokens
    cached = engine.chat(later, options)
    assert cache.reused_tokens - reused >= first.input_tokens - 1
    cache.clear()
    engine.chat([{"role": "user", "content": "Say hello."}], options)  # the context no longer holds the game
    assert engine.chat(later, options).text == cached.text and cached.text
    assert cached.input_tokens > first.input_tokens and 0 < cached.output_tokens <= 16


@needs_llama_cpp
def test_grammar_holds_the_reply_and_streams_it(engine):
    grammar = 'start: "MOVES: " MOVE ("; " MOVE)?\nMOVE: "ask_choice" | "appeal" | "conclude"'
    engine.check_grammar(grammar)
    pieces: list[str] = []
    result = engine.chat_grammar(LONG, grammar, GenerationOptions(max_tokens=40, temperature=0.7), on_text=pieces.append)
    assert result.text.startswith("MOVES: ")
    assert all(move in ("ask_choice", "appeal", "conclude") for move in result.text[len("MOVES: "):].split("; "))
    assert "".join(pieces).strip() == result.text
    assert result.output_tokens < 40  # the grammar ended the reply
    with pytest.raises(LabError, match="grammar cannot be built"):
        engine.check_grammar('start: "unclosed')


@needs_llama_cpp
def test_a_cancelled_reply_stops(engine):
    import threading

    stop = threading.Event()
    stop.set()
    with cancel_on(stop), pytest.raises(KeyboardInterrupt):
        engine.chat(LONG, GenerationOptions(max_tokens=200, temperature=0.0))


@needs_llama_cpp
def test_auto_plays_the_embedded_model_and_its_adapters_on_llama_cpp(adapter):
    from engine.llm.local import shared_backend

    assert choose_engine("", None) == "llama.cpp"
    assert choose_engine(str(adapter), None) == "llama.cpp"  # an adapter of the embedded model
    assert shared_backend("").engine == "llama.cpp" and shared_backend("").describe() == "local:embedded"  # one name
    assert shared_backend("", engine="transformers").engine == "transformers"
