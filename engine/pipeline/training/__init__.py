"""Finetuning: LoRA/QLoRA with transformers, peft and trl (SFT, KTO, DPO), and the OpenAI fine-tuning API.

Every run is recorded in the store (`training_runs`, one row per logged step in `training_steps`) while it
trains, so `ptom-lab runs follow` and the TUI can watch it live. Heavy libraries are imported inside functions:
importing this package costs nothing at CLI start-up.
"""

from engine.pipeline.training.config import TrainConfig, load_config

__all__ = ["TrainConfig", "load_config"]
