"""KTO and DPO, a step each on tiny files, through trl's trainers with a LoRA adapter and the store callback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import TrainerCallback

from engine.pipeline.training import preference, runs
from engine.pipeline.training.config import load_config
from tests.training_rows import write_rows

pytestmark = pytest.mark.slow

PROMPT = [{"role": "system", "content": "Persuade them to choose A."}, {"role": "user", "content": "The conversation starts."}]


def reply(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]



class SeeArgs(TrainerCallback):
    """Keeps the training arguments trl's trainer was built with."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.args = args


def train(tmp_path: Path, store, method: str, rows: list[dict], callbacks: list | None = None, **settings) -> dict:
    data = write_rows(tmp_path / f"{method}.jsonl", rows)
    cfg = load_config(None, dict(method=method, data=data, output=str(tmp_path / method), max_steps=1,
                                 batch_size=2, max_seq_len=48, save_steps=10, lora_r=4, lora_alpha=8, cpu_threads=1,
                                 **settings))
    return preference.train(cfg, store, callbacks=callbacks)


def test_kto_step(tmp_path, store):
    rows = [{"prompt": PROMPT, "completion": reply("MOVES: ask_preference cost\nMESSAGE: Does cost matter?"), "label": True},
            {"prompt": PROMPT, "completion": reply("MOVES: conclude\nMESSAGE: Decide now."), "label": False}]
    seen = SeeArgs()
    result = train(tmp_path, store, "kto", rows, callbacks=[seen], desirable_weight=0.5)
    assert (seen.args.desirable_weight, seen.args.undesirable_weight) == (0.5, 1.0)  # the flag reaches trl
    (step,) = store.training_steps(result["run_id"])
    assert step["step"] == 1 and step["loss"] is not None and step["learning_rate"] > 0
    assert "kl" in json.loads(step["logs_json"])
    assert runs.get_run(store, result["run_id"])["method"] == "kto"
    assert (Path(result["output"]) / "adapter_config.json").exists()


def test_dpo_step(tmp_path, store):
    rows = [{"prompt": PROMPT, "chosen": reply("MOVES: disclose A.cost=-1\nMESSAGE: A is cheaper."),
             "rejected": reply("MOVES: conclude\nMESSAGE: Pick one.")}] * 2
    result = train(tmp_path, store, "dpo", rows)
    (step,) = store.training_steps(result["run_id"])
    logs = json.loads(step["logs_json"])
    assert step["loss"] == pytest.approx(0.6931, abs=0.05)  # -log sigmoid(0) on the first step: the adapter starts at zero
    assert any(k.startswith("rewards/") for k in logs)
    assert store.db["models"].get(result["model_id"])["kind"] == "lora-dpo"
