"""Outcome-based training: KTO from outcome-labelled turns, DPO from chosen/rejected pairs (trl KTOTrainer,
DPOTrainer), each as a LoRA adapter.

With a peft adapter the reference model is the base with the adapter switched off, so no second copy of the
model is loaded: it fits wherever SFT fits.
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
    train_rows = load_rows(cfg.data, cfg.method)
    eval_rows = load_rows(cfg.eval_data, cfg.method) if cfg.eval_data else None

    def build(model, tokenizer, cbs):
        from datasets import Dataset

        if cfg.method == "kto":
            from trl import KTOConfig as Config
            from trl import KTOTrainer as Trainer
        else:
            from trl import DPOConfig as Config
            from trl import DPOTrainer as Trainer
        extra = ({"desirable_weight": cfg.desirable_weight, "undesirable_weight": cfg.undesirable_weight}
                 if cfg.method == "kto" else {})
        args = Config(**loop.training_kwargs(cfg, eval_rows is not None), beta=cfg.beta, **extra)
        return Trainer(
            model=model, args=args, processing_class=tokenizer, peft_config=loop.lora_config(cfg),
            train_dataset=Dataset.from_list(train_rows),
            eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None, callbacks=cbs,
        )

    return loop.run_training(cfg, store, build, resume=resume, extra_callbacks=callbacks, echo=echo, say=say,
                             n_rows=len(train_rows))
