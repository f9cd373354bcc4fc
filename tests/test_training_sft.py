"""SFT on the embedded model, for real but tiny: steps land in the store, an interrupted run resumes and
finishes, the adapter is saved and registered. QLoRA without CUDA stops before loading anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import TrainerCallback

from engine.errors import LabError
from engine.pipeline.training import runs, sft
from engine.pipeline.training.config import load_config
from tests.training_rows import chat_rows, write_rows

pytestmark = pytest.mark.slow



def tiny(tmp_path: Path, **overrides) -> dict:
    """Two steps of two short rows; one torch thread: two threads on cores shared with other jobs spin-wait.
    float32 on every machine (`auto` depends on the CPU: its own test is below)."""
    values = dict(data=write_rows(tmp_path / "train.jsonl", chat_rows(4)), output=str(tmp_path / "models" / "tiny"),
                  max_steps=2, batch_size=2, max_seq_len=48, save_steps=1, lora_r=4, lora_alpha=8, cpu_threads=1,
                  precision="float32")
    return values | overrides


def test_sft_steps_reach_the_store_and_adapter_is_registered(tmp_path, store):
    import torch

    threads, printed = torch.get_num_threads(), []
    result = sft.train(load_config(None, tiny(tmp_path)), store, echo=lambda row, total: printed.append((row, total)))
    steps = store.training_steps(result["run_id"])
    assert [s["step"] for s in steps] == [1, 2]
    assert all(s["loss"] > 0 and s["learning_rate"] > 0 and s["grad_norm"] is not None for s in steps)
    assert steps[0]["tokens_per_s"] > 0 and steps[-1]["eta_s"] == 0
    assert [total for _, total in printed] == [2, 2]
    assert torch.get_num_threads() == threads  # cpu_threads applies to the run only
    row = runs.get_run(store, result["run_id"])
    assert row["status"] == "finished" and row["total_steps"] == 2
    assert json.loads(row["metrics_json"])["last_loss"] == steps[-1]["loss"]
    out = Path(result["output"])
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"], "config.json").exists()  # names a loadable base
    assert (out / "adapter_model.safetensors").exists() and (out / "tokenizer_config.json").exists()
    model = store.db["models"].get(result["model_id"])
    assert (model["path"], model["run_id"], model["kind"]) == (str(out), result["run_id"], "lora-sft")


class Interrupt(TrainerCallback):
    """Ctrl-C right after the checkpoint of step 1 is saved."""

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == 1:
            raise KeyboardInterrupt


def test_interrupt_then_resume_finishes_the_run(tmp_path, store):
    cfg = load_config(None, tiny(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        sft.train(cfg, store, callbacks=[Interrupt()])
    (row,) = runs.list_runs(store)
    assert row["status"] == "interrupted" and row["checkpoint"].endswith("checkpoint-1")
    assert [s["step"] for s in store.training_steps(row["id"])] == [1]
    resumed = sft.train(load_config(None, {}, runs.run_config(row)), store, resume=cfg.output)
    assert resumed["run_id"] == row["id"]
    assert runs.get_run(store, row["id"])["status"] == "finished"
    assert [s["step"] for s in store.training_steps(row["id"])] == [1, 2]
    with pytest.raises(LabError, match="already finished"):
        sft.train(cfg, store, resume=row["id"])


def test_qlora_without_cuda_is_a_clear_error(tmp_path, store, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LabError, match="needs a CUDA GPU"):
        sft.train(load_config(None, tiny(tmp_path, qlora=True)), store)
    assert runs.list_runs(store) == []  # nothing started


def test_report_to_missing_package_is_a_clear_error(tmp_path, store, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(LabError, match="pip install wandb"):
        sft.train(load_config(None, tiny(tmp_path, report_to="wandb")), store)


class FirstBatch(TrainerCallback):
    """The first training batch, as the collator hands it to the model."""

    def on_train_begin(self, args, state, control, train_dataloader=None, processing_class=None, **kwargs):
        batch = next(iter(train_dataloader))
        self.trained = [processing_class.decode(ids[labels != -100])
                        for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True)]
        self.whole = [processing_class.decode(ids[mask == 1]) for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)]


def test_loss_is_on_the_assistant_reply_only(tmp_path, store):
    seen = FirstBatch()
    sft.train(load_config(None, tiny(tmp_path, max_steps=1, max_seq_len=128)), store, callbacks=[seen])
    for trained, whole in zip(seen.trained, seen.whole, strict=True):
        assert "Persuade them" in whole and "The conversation starts." in whole  # the prompt is in the input
        assert trained.startswith("MOVES: disclose A.cost=-1\nMESSAGE: A costs less (")  # the labels: the reply only
        assert "Persuade" not in trained and "conversation starts" not in trained


def test_max_seq_len_that_cuts_every_reply_is_a_clear_error(tmp_path, store):
    with pytest.raises(LabError, match="raise --max-seq-len"):
        sft.train(load_config(None, tiny(tmp_path, max_seq_len=8)), store)
    (row,) = runs.list_runs(store)
    assert row["status"] == "failed" and "--max-seq-len 8" in row["error"]


def test_replies_lost_to_max_seq_len_are_counted(tmp_path, store):
    rows = chat_rows(4)
    rows[0]["messages"][0]["content"] = "A very long scenario. " * 40  # its reply cannot fit in 64 tokens
    said: list[str] = []
    values = tiny(tmp_path, data=write_rows(tmp_path / "mixed.jsonl", rows), max_steps=1, max_seq_len=64)
    sft.train(load_config(None, values), store, say=said.append)
    assert said == ["note: 1 of 4 lost their whole reply to the cut and are left out (raise --max-seq-len to keep them)"]


def test_eval_data_rows_are_apart_from_training_steps(tmp_path, store):
    values = tiny(tmp_path, max_steps=1, eval_data=write_rows(tmp_path / "val.jsonl", chat_rows(2)))
    result = sft.train(load_config(None, values), store)
    steps = store.training_steps(result["run_id"])
    train = [s for s in steps if s["loss"] is not None]
    evals = [s for s in steps if s["loss"] is None]
    assert [s["step"] for s in train] == [1] and [s["step"] for s in evals] == [1]  # eval every save_steps
    assert all(s["tokens_per_s"] is None and s["learning_rate"] is None for s in evals)
    line = runs.format_step(evals[-1], 1)
    assert line.startswith("step 1/1  eval loss ") and float(line.rsplit(" ", 1)[1]) > 0
    assert result["metrics"]["last_eval_loss"] == json.loads(evals[-1]["logs_json"])["eval_loss"]
    assert result["metrics"]["last_loss"] == train[-1]["loss"]


def test_token_budget_ends_the_run_and_the_adapter_records_its_reply_format(tmp_path, store):
    """The rows teach the compact format (one full row mixed in: one warning); the adapter plays compact unasked."""
    from engine.players.registry import make_persuader

    rows = chat_rows(4)
    rows[0]["messages"][-1]["content"] = "REASONING: A is cheap.\n" + rows[0]["messages"][-1]["content"]
    said: list[str] = []
    values = tiny(tmp_path, data=write_rows(tmp_path / "mixed.jsonl", rows), max_steps=4, max_train_tokens=1)
    result = sft.train(load_config(None, values), store, say=said.append)
    assert [s["step"] for s in store.training_steps(result["run_id"])] == [1]  # 4 steps asked; the budget ends it at 1
    assert result["metrics"]["num_input_tokens_seen"] > 0
    assert json.loads(runs.get_run(store, result["run_id"])["config_json"])["max_train_tokens"] == 1
    assert [s for s in said if "mix reply formats" in s] == [
        "warning: the training rows mix reply formats (1 full, 3 compact); the adapter is recorded as compact. "
        "Train on one `prepare --reply-format` output for a clean model"]
    out = Path(result["output"])
    assert runs.read_reply_format(out) == "compact" and (out / "adapter_config.json").exists()
    assert json.loads(store.db["models"].get(result["model_id"])["config_json"])["reply_format"] == "compact"
    plain = make_persuader(f"local:{out}?max_tokens=8")
    assert (plain.reply, plain.format_warning) == ("compact", None)
    asked = make_persuader(f"local:{out}?reply=full&max_tokens=8")
    assert asked.reply == "full" and "trained on the compact reply format" in asked.format_warning


class ComputeDtype(TrainerCallback):
    """The dtype the model's projections write during training, and the dtypes of its frozen and trained weights."""

    def __init__(self) -> None:
        self.seen: set = set()
        self.weights: dict[bool, set] = {True: set(), False: set()}  # requires_grad -> dtypes

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        import torch

        for param in model.parameters():
            self.weights[param.requires_grad].add(param.dtype)
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_hook(lambda _m, _i, out: self.seen.add(out.dtype))


@pytest.mark.parametrize(("precision", "bf16_cpu", "expected"), [
    ("auto", True, "bf16"), ("auto", False, "float32"), ("float32", True, "float32"), ("bf16", False, "bf16"),
])
def test_precision_is_resolved_for_this_cpu_and_recorded(tmp_path, store, monkeypatch, precision, bf16_cpu, expected):
    import torch

    # torch's own CPU feature probe, as a CPU with (or without) native bf16 would answer it
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: {"avx512_bf16": bf16_cpu, "amx_bf16": False})
    said, probe = [], ComputeDtype()
    result = sft.train(load_config(None, tiny(tmp_path, precision=precision, max_steps=1)), store, say=said.append,
                       callbacks=[probe])
    assert result["metrics"]["precision"] == expected  # `auto` is stored as what it meant on this machine
    computes_in = torch.bfloat16 if expected == "bf16" else torch.float32
    assert probe.seen == {computes_in}
    # the frozen base in the run's precision; LoRA's own weights float32 (and so the saved adapter)
    assert probe.weights == {False: {computes_in}, True: {torch.float32}}
    assert any("bf16 weights and matmuls" in line for line in said) == (precision == "auto" and expected == "bf16")
