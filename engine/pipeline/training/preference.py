"""Outcome-based training: KTO from outcome-labelled turns, DPO from chosen/rejected pairs (trl KTOTrainer,
DPOTrainer), each as a LoRA adapter.

With a peft adapter the reference model is the base with the adapter switched off, so no second copy of the
model is loaded: it fits wherever SFT fits. The run itself (data, model, callbacks, store) is `loop.run_training`.
"""

from __future__ import annotations

from typing import Any

from engine.pipeline.training import loop
from engine.pipeline.training.config import TrainConfig
from engine.store import Store


def trainer_parts(cfg: TrainConfig) -> tuple[Any, Any, dict[str, Any]]:
    if cfg.method == "kto":
        from trl import KTOConfig, KTOTrainer

        return KTOConfig, KTOTrainer, {"beta": cfg.beta, "desirable_weight": cfg.desirable_weight,
                                       "undesirable_weight": cfg.undesirable_weight}
    from trl import DPOConfig, DPOTrainer

    return DPOConfig, DPOTrainer, {"beta": cfg.beta}


def train(cfg: TrainConfig, store: Store, *, resume: str | None = None,
          callbacks: list[Any] | None = None, echo: loop.Echo | None = None,
          say: loop.Say | None = None) -> dict[str, Any]:
    return loop.run_training(cfg, store, trainer_parts, resume=resume, callbacks=callbacks, echo=echo, say=say)
