"""QLoRA and bf16 LoRA on a CUDA GPU through the real training path (issue 6), tiny but for real.

QLoRA must really load the base in 4-bit NF4 (bitsandbytes `Linear4bit` layers, seen by a trainer callback
inside `sft.train`), log finite losses to the store, save and register an adapter, and that adapter must load and
generate on the GPU through `LocalBackend`, the way `ptom-lab play --persuader local:DIR` uses it. CI has no
GPU: every test here skips cleanly without CUDA (and the QLoRA one without bitsandbytes).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from engine.llm.base import GenerationOptions
from engine.pipeline.training import runs, sft
from engine.pipeline.training.config import load_config
from tests.training_rows import chat_rows, write_rows

CUDA = torch.cuda.is_available()
BNB = importlib.util.find_spec("bitsandbytes") is not None

pytestmark = [pytest.mark.gpu, pytest.mark.slow, pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")]


class SeeModel(TrainerCallback):
    """Records how the trainer's model was loaded: the quantised layers and the device of its weights."""

    def __init__(self) -> None:
        self.quant_types: list[str] = []
        self.devices: set[str] = set()
        self.dtypes: set[str] = set()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        for module in model.modules():
            if type(module).__name__ == "Linear4bit":
                self.quant_types.append(module.weight.quant_type)
        for p in model.parameters():
            self.devices.add(p.device.type)
            self.dtypes.add(str(p.dtype))


def train_tiny(tmp_path: Path, store, qlora: bool) -> tuple[dict[str, Any], SeeModel]:
    data = write_rows(tmp_path / "train.jsonl", chat_rows(16))
    cfg = load_config(None, dict(data=data, output=str(tmp_path / "models" / "tiny"), qlora=qlora, max_steps=4,
                                 batch_size=4, grad_accum=1, max_seq_len=128, save_steps=4, lora_r=8, lora_alpha=16))
    seen = SeeModel()
    return sft.train(cfg, store, callbacks=[seen]), seen


def check_finished_adapter(result: dict[str, Any], store) -> None:
    """The run finished with 4 finite losses, and its adapter is saved, registered and generates on the GPU."""
    from engine.llm.local import LocalBackend

    run = runs.get_run(store, result["run_id"])
    assert run["status"] == "finished", run["error"]
    losses = [s["loss"] for s in store.training_steps(result["run_id"])]
    assert len(losses) == 4 and all(x is not None and math.isfinite(x) for x in losses)
    out = Path(result["output"])
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    assert result["model_id"]
    backend = LocalBackend(str(out))  # adapter-only folder: its base comes from adapter_config.json
    assert backend.device == "cuda"
    reply = backend.chat([{"role": "user", "content": "Which proposal?"}], GenerationOptions(max_tokens=8, temperature=0.0))
    assert reply.output_tokens > 0


@pytest.mark.skipif(CUDA and not BNB, reason="needs bitsandbytes (pip install 'ptom-lab[gpu]')")
def test_qlora_trains_on_a_4bit_nf4_base(tmp_path, store):
    result, seen = train_tiny(tmp_path, store, qlora=True)
    assert seen.quant_types and set(seen.quant_types) == {"nf4"}  # every quantised layer is NF4
    assert seen.devices == {"cuda"}
    check_finished_adapter(result, store)


def test_bf16_lora_trains_on_cuda(tmp_path, store):
    result, seen = train_tiny(tmp_path, store, qlora=False)
    assert not seen.quant_types
    assert seen.devices == {"cuda"}
    assert "torch.bfloat16" in seen.dtypes or "torch.float16" in seen.dtypes  # the frozen base, not float32
    check_finished_adapter(result, store)
