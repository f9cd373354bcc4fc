"""The trainer callbacks: each logged step and the run's checkpoints into the store, a token budget, input grads off.

`StoreCallback` is the one channel between a training process and everyone watching it (`ptom-lab runs follow`,
the TUI): they poll `training_steps`. Only the main process writes, so `accelerate launch` on several GPUs records
one run. `TokenBudget` ends a run after a fixed number of training tokens (`--max-train-tokens`), so two runs on
data of different lengths (the full and compact reply formats) can be compared at equal compute.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from engine.pipeline.training import runs
from engine.store import Store

COLUMNS = ("loss", "learning_rate", "grad_norm")


class StoreCallback(TrainerCallback):
    """Writes loss, learning rate, grad norm, tokens/s, epoch and ETA at every `logging_steps`."""

    def __init__(self, store: Store, run_id: str, echo: Callable[[dict[str, Any], int], None] | None = None) -> None:
        self.store, self.run_id, self.echo = store, run_id, echo
        self._t0 = self._t_last = 0.0
        self._tokens_last = 0
        self._step0 = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = self._t_last = time.monotonic()
        self._tokens_last = state.num_input_tokens_seen or 0
        self._step0 = state.global_step  # > 0 when resuming: the ETA uses this session's pace only
        if state.is_world_process_zero:
            runs.update_run(self.store, self.run_id, total_steps=state.max_steps)

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs):
        if not state.is_world_process_zero or not logs or "train_loss" in logs:
            return  # the end-of-training summary becomes the run's metrics, not a step
        now = time.monotonic()
        done = state.global_step - self._step0
        eta = (now - self._t0) / done * max(state.max_steps - state.global_step, 0) if done > 0 else None
        if any(key.startswith("eval_") for key in logs):  # an evaluation: its own row, no training loss or pace
            row = {"step": state.global_step, "epoch": state.epoch, "eta_s": eta, "logs": logs}
            runs.add_step(self.store, self.run_id, row)
            if self.echo:
                self.echo(row, state.max_steps)
            self._t_last = now  # the next step's tokens/s counts training time only
            return
        tokens = state.num_input_tokens_seen or 0
        elapsed = max(now - self._t_last, 1e-9)
        tokens_per_s = (tokens - self._tokens_last) / elapsed if tokens > self._tokens_last else None
        row: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch, "tokens_per_s": tokens_per_s,
                               "eta_s": eta, "logs": logs}
        for key in COLUMNS:
            if isinstance(logs.get(key), (int, float)):
                row[key] = float(logs[key])
        runs.add_step(self.store, self.run_id, row)
        if self.echo:
            self.echo(row, state.max_steps)
        self._t_last, self._tokens_last = now, tokens

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            checkpoint = f"{args.output_dir}/checkpoint-{state.global_step}"
            runs.update_run(self.store, self.run_id, checkpoint=checkpoint)


class TokenBudget(TrainerCallback):
    """Stops training at the first optimizer step after which `num_input_tokens_seen` reaches `max_tokens`.

    The Trainer counts the non-padding input tokens of every micro-batch (summed over processes), so the budget
    is the same whatever the batch size or the number of GPUs; the run overshoots by less than one step's tokens.
    """

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens

    def on_step_end(self, args, state, control, **kwargs):
        if (state.num_input_tokens_seen or 0) >= self.max_tokens:
            control.should_training_stop = True


class NoInputGrads(TrainerCallback):
    """Undoes the embedding-output gradient the Trainer switches on with activation checkpointing under PEFT.

    That hook exists for reentrant checkpointing, which needs a layer's input to require a gradient; the lab's
    checkpointing is non-reentrant (`loop.training_kwargs`), which does not. Left on, it makes the backward pass run
    through every decoder layer even when LoRA adapts only the last few (`lora_layers`), where it could stop at the
    lowest adapted one: bench/train.py measures the difference.
    """

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and hasattr(model, "disable_input_require_grads"):
            model.disable_input_require_grads()
