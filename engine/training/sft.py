"""Supervised finetuning: a LoRA adapter trained with trl's SFTTrainer, loss on the assistant turn only.

Rows become conversational prompt/completion (`data.to_prompt_completion`), so the SFTTrainer applies the chat
template and masks the prompt (`completion_only_loss`): the model learns to write the persuader's reply, not to
repeat the scenario.
"""

from __future__ import annotations

from typing import Any

from engine.store import Store
from engine.training import loop
from engine.training.config import TrainConfig
from engine.training.data import load_rows


def train(cfg: TrainConfig, store: Store, *, resume: str | None = None,
          callbacks: list[Any] | None = None, echo: loop.Echo | None = None,
          say: loop.Say | None = None) -> dict[str, Any]:
    loop.check_environment(cfg)
    train_rows = load_rows(cfg.data, "sft")
    eval_rows = load_rows(cfg.eval_data, "sft") if cfg.eval_data else None

    def build(model, tokenizer, cbs):
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**loop.training_kwargs(cfg, eval_rows is not None), packing=cfg.packing,
                         completion_only_loss=True)
        return SFTTrainer(
            model=model, args=args, processing_class=tokenizer, peft_config=loop.lora_config(cfg),
            train_dataset=Dataset.from_list(train_rows),
            eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None, callbacks=cbs,
        )

    return loop.run_training(cfg, store, build, resume=resume, extra_callbacks=callbacks, echo=echo, say=say,
                             n_rows=len(train_rows))
