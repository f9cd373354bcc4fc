"""Supervised finetuning: a LoRA adapter trained with trl's SFTTrainer, loss on the assistant turn only.

Rows become conversational prompt/completion (`data.to_prompt_completion`), so the SFTTrainer applies the chat
template and masks the prompt (`completion_only_loss`): the model learns to write the persuader's reply, not to
repeat the scenario. The run itself (data, model, callbacks, store) is `loop.run_training`.
"""

from __future__ import annotations

from typing import Any

from engine.pipeline.training import loop
from engine.pipeline.training.config import TrainConfig
from engine.store import Store


def trainer_parts(cfg: TrainConfig) -> tuple[Any, Any, dict[str, Any]]:
    """trl's SFTConfig, the trainer for `cfg.loss`, and the SFT arguments.

    `loss: labels` (the default) projects only the reply's positions onto the vocabulary (`label_loss`);
    `loss: full` is trl's own trainer as it is, kept as the comparison that `bench/train.py` measures.
    """
    from trl import SFTConfig, SFTTrainer

    if cfg.loss == "labels":
        from engine.pipeline.training.label_loss import LabelLossSFTTrainer

        trainer = LabelLossSFTTrainer
    else:
        trainer = SFTTrainer
    return SFTConfig, trainer, {"packing": cfg.packing, "completion_only_loss": True}


def train(cfg: TrainConfig, store: Store, *, resume: str | None = None,
          callbacks: list[Any] | None = None, echo: loop.Echo | None = None,
          say: loop.Say | None = None) -> dict[str, Any]:
    return loop.run_training(cfg, store, trainer_parts, resume=resume, callbacks=callbacks, echo=echo, say=say)
