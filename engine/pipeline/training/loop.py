"""What SFT, KTO and DPO share: environment checks, loading the base model (QLoRA on CUDA), the LoRA config,
the TrainingArguments every method uses, and the run lifecycle around `trainer.train()`.

The lifecycle is the contract with the store: `running` while training (with this pid), `finished` with the
final metrics and the adapter registered in `models`, `failed` with the error, `interrupted` on Ctrl-C with the
last checkpoint, which `--resume` continues from.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import LabError
from engine.pipeline.training import runs
from engine.pipeline.training.config import TrainConfig
from engine.players.prompts import prompt_layout
from engine.store import Store

REPORT_PACKAGES = {"wandb": "wandb", "tensorboard": "tensorboard"}


def check_environment(cfg: TrainConfig) -> None:
    """Fail before anything is loaded: QLoRA needs CUDA and bitsandbytes; --report-to needs its package."""
    if cfg.qlora:
        import torch

        if not torch.cuda.is_available():
            raise LabError("--qlora loads the base model in 4-bit NF4 with bitsandbytes and needs a CUDA GPU; "
                           "none is visible here (train without --qlora on the CPU)")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise LabError("--qlora needs bitsandbytes: pip install 'ptom-lab[gpu]' (or pip install bitsandbytes)")
    package = REPORT_PACKAGES.get(cfg.report_to)
    if package and importlib.util.find_spec(package) is None:
        raise LabError(f"--report-to {cfg.report_to} needs the '{package}' package: pip install {package}")


def is_main_process() -> bool:
    """Under `accelerate launch` only rank 0 keeps the run record; a plain run is rank 0."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


def return_freed_memory(computes_in: str) -> None:
    """Fix glibc's mmap threshold for the memory-saving mode (Linux; elsewhere nothing to do).

    glibc raises its mmap threshold each time a large block is freed, up to 32 MB, so the activations of a CPU
    training step (a few MB to tens of MB each) end up in the heap, where freed blocks are kept, fragmented, and
    not reused for the next larger ones: a tutorial step of SmolLM2-135M peaked at 7.7 GB resident this way
    against 1.9 GB of live tensors. Below a fixed threshold blocks stay in the heap and are reused; above it each
    gets its own mapping, handed back when freed and paid for in page faults when touched again. Measured with
    one example a pass, every layer checkpointed (6 steps of bench/train.py):
    - float32: 128 KiB (glibc's starting value) peaked at 1.26 GB at 64.5 tokens/s, 16 MB at 2.8 GB at 104;
    - bf16: 128 KiB peaked at 1.65 GB at 86.4 tokens/s (peft's input cast off), 16 MB at 1.85 GB at 141.7 (the
      trainer before issue 15: 88.7): bf16 activations of one example (up to 3 MB) stay in the heap, the
      vocabulary-sized logits go back at once (under autocast over float32 weights: 14 million page faults over
      four 1,000-token examples at 128 KiB, 0.6 million at 16 MB).
    Without checkpointing the heap is not the peak: the fixed threshold costs only time (LoRA on the last 10
    layers, float32: 45 against 69 tokens/s for 3.4 GB against 4.5 GB), so only the memory-saving mode asks.
    """
    import ctypes

    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(-3, 16 * 2**20 if computes_in == "bf16" else 128 * 1024)  # M_MMAP_THRESHOLD


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (avx512_bf16 or AMX): there bf16 is faster than float32;
    elsewhere oneDNN emulates it and it only costs time."""
    import torch

    try:
        capability = torch._C._cpu._get_cpu_capability()  # torch's own CPU feature probe (private, so guarded)
    except (AttributeError, RuntimeError):
        return False
    return bool(capability.get("avx512_bf16") or capability.get("amx_bf16"))


def precision(cfg: TrainConfig) -> str:
    """The number format this run computes in here: `cfg.precision` with `auto` resolved for this machine."""
    import torch

    if cfg.precision != "auto":
        return cfg.precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "float32"


def load_base(cfg: TrainConfig):
    """The base model and tokenizer, its weights in the run's precision (float32, or bf16 on a CPU with native bf16
    and on a GPU that has it, fp16 on one without), 4-bit NF4 with --qlora. The base weights are frozen, so bf16
    loses nothing to rounded updates; LoRA's own weights stay float32 (peft), and the trainer autocasts the
    matmuls. On a CPU, bf16 weights halve the memory the model takes and spare autocast a bf16 copy of every weight
    at every forward pass (bench/train.py)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.llm.embedded import resolve_model_path

    path = resolve_model_path(cfg.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot load the model '{cfg.model}' ({path}): {str(exc).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    computes_in = precision(cfg)
    kwargs: dict[str, Any] = {"dtype": {"bf16": torch.bfloat16, "fp16": torch.float16}.get(computes_in, torch.float32)}
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    elif cfg.gradient_checkpointing:  # the memory-saving mode (see there)
        return_freed_memory(computes_in)
    if cfg.qlora:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"],
        )
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if cfg.qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model, tokenizer, path


def lora_config(cfg: TrainConfig, model: Any = None):
    """LoRA on `target_modules`, in every decoder layer or (`lora_layers`) in the model's last ones."""
    from peft import LoraConfig

    layers: dict[str, Any] = {}
    targets = cfg.target_modules
    if cfg.lora_layers is not None and model is not None:
        n_layers = model.config.num_hidden_layers
        if cfg.lora_layers > n_layers:
            raise LabError(f"lora_layers {cfg.lora_layers}: the model has only {n_layers} decoder layers")
        layers = {"layers_to_transform": list(range(n_layers - cfg.lora_layers, n_layers)), "layers_pattern": "layers"}
        if targets == "all-linear":  # peft picks layers only from a list of module names
            import torch

            targets = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                              if isinstance(module, torch.nn.Linear) and ".layers." in name})
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM", **layers)


def training_kwargs(cfg: TrainConfig, has_eval: bool) -> dict[str, Any]:
    """The TrainingArguments shared by SFTConfig, KTOConfig and DPOConfig."""
    import torch

    kwargs: dict[str, Any] = dict(
        output_dir=cfg.output, num_train_epochs=cfg.epochs or 1.0, max_steps=cfg.max_steps, learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, logging_steps=cfg.logging_steps, seed=cfg.seed,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to], max_length=cfg.max_seq_len,
        include_num_input_tokens_seen="non_padding", use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0, disable_tqdm=True,
    )
    # trl would autocast to bf16 everywhere; `precision` decides instead (on a CPU without native bf16 it only
    # costs time)
    mode = precision(cfg)
    # Activation checkpointing keeps each layer's input only and recomputes the rest in the backward pass:
    # `gradient_checkpointing` in the config (see its comment for the figures). Non-reentrant: it needs no
    # gradient on the embeddings' output, which a LoRA model's frozen embeddings would not give.
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing (the old name warns)
    from transformers import TrainingArguments

    checkpointing = ("activation_checkpointing" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
                     else "gradient_checkpointing")
    kwargs.update({"bf16": mode == "bf16", "fp16": mode == "fp16", checkpointing: cfg.gradient_checkpointing,
                   f"{checkpointing}_kwargs": {"use_reentrant": False}})
    if has_eval:
        kwargs.update(eval_strategy="steps", eval_steps=cfg.save_steps)
    return kwargs


BuildTrainer = Callable[[Any, Any, list[Any]], Any]  # (model, tokenizer, callbacks) -> a trl trainer
Echo = Callable[[dict[str, Any], int], None]
Say = Callable[[str], None]


def check_dataset(trainer: Any, cfg: TrainConfig, n_rows: int, say: Say | None) -> None:
    """Say what --max-seq-len did to the data before any step is spent on it.

    trl cuts every example at `max_length` from the end, so a long scenario prompt can push the reply out:
    examples that lose their whole reply are dropped by trl without a word. None left is an error that names the
    cause (trl would fail later with a sampler error); some lost is a note with the counts.
    """
    dataset = trainer.train_dataset
    if dataset is None or not hasattr(dataset, "__len__"):
        return
    kept = len(dataset)
    if kept == 0:
        raise LabError(f"{cfg.data}: no example keeps any of its reply within --max-seq-len {cfg.max_seq_len} "
                       "(each is cut from the end and loses the reply it should learn); raise --max-seq-len")
    if say is None or cfg.packing:
        return
    dropped = n_rows - kept
    columns = getattr(dataset, "column_names", None) or []
    cut = sum(1 for ids in dataset["input_ids"] if len(ids) >= cfg.max_seq_len) if "input_ids" in columns else 0
    if dropped > 0 or cut:
        parts = [f"{cut} of {kept} examples kept are cut at --max-seq-len {cfg.max_seq_len}"] if cut else []
        if dropped > 0:
            parts.append(f"{dropped} of {n_rows} lost their whole reply to the cut and are left out")
        say("note: " + "; ".join(parts) + " (raise --max-seq-len to keep them)")


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """torch's CPU threads for the length of a run, restored after (the TUI trains in its own process too)."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


TrainerParts = Callable[[TrainConfig], tuple[Any, Any, dict[str, Any]]]


def run_training(cfg: TrainConfig, store: Store, parts: TrainerParts, *, resume: str | None = None,
                 callbacks: list[Any] | None = None, echo: Echo | None = None,
                 say: Say | None = None) -> dict[str, Any]:
    """Check, read the data, load, train, save and record one run.

    `parts(cfg)` names the method's trl config class, trainer class and its own arguments (SFT in `sft.py`,
    KTO/DPO in `preference.py`); everything else is the same for every method and lives here.
    Returns {"run_id", "output", "metrics", "model_id"}.
    """
    from engine.pipeline.training.data import load_rows

    check_environment(cfg)
    train_rows = load_rows(cfg.data, cfg.method)
    eval_rows = load_rows(cfg.eval_data, cfg.method) if cfg.eval_data else None
    reply_counts = runs.reply_format_counts(train_rows)  # recorded with the adapter, so play writes the same format

    def build(model, tokenizer, cbs: list[Any]):
        from datasets import Dataset

        from engine.pipeline.training.dropout import lean_lora_dropout

        config_class, trainer_class, method_kwargs = parts(cfg)
        args = config_class(**training_kwargs(cfg, eval_rows is not None), **method_kwargs)
        peft_config = lora_config(cfg, model)
        if cfg.init_adapter:  # continue an adapter: its LoRA weights, trainable, instead of fresh ones
            from peft import PeftModel

            model, peft_config = PeftModel.from_pretrained(model, str(cfg.init_adapter), is_trainable=True), None
        trainer = trainer_class(
            model=model, args=args, processing_class=tokenizer, peft_config=peft_config,
            train_dataset=Dataset.from_list(train_rows),
            eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None, callbacks=cbs,
        )
        lean_lora_dropout(trainer.model)
        return trainer

    with cpu_threads(cfg.cpu_threads), warnings.catch_warnings():
        # trl still calls transformers' renamed `is_gradient_checkpointing`: a warning the user can do nothing about
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return _run(cfg, store, build, resume, callbacks, echo, say, len(train_rows), reply_counts,
                    prompt_layout(train_rows))


def _run(cfg: TrainConfig, store: Store, build: BuildTrainer, resume: str | None,
         extra_callbacks: list[Any] | None, echo: Echo | None, say: Say | None, n_rows: int,
         reply_counts: dict[str, int], layout: int) -> dict[str, Any]:
    main = is_main_process()
    reply = runs.detect_reply_format(reply_counts, say if main else None)
    run_id, checkpoint = None, None
    if resume:
        row = runs.get_run(store, resume)
        if row["status"] == "finished":
            raise LabError(f"run {row['id']} already finished; its adapter is in {row['output_dir']}")
        if row["status"] == "running":
            raise LabError(f"run {row['id']} is still training (pid {row['pid']}); follow it with `ptom-lab runs follow`")
        run_id = row["id"]
        checkpoint = runs.last_checkpoint(row["output_dir"])
        if checkpoint is None:
            raise LabError(f"run {run_id} saved no checkpoint in {row['output_dir']} yet: start it again")
    if echo:  # the step lines are the progress: no tqdm bars for loading weights and tokenizing the data
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    model, tokenizer, base_path = load_base(cfg)
    computes_in = precision(cfg)
    if main and say and cfg.precision == "auto" and computes_in == "bf16" and model.device.type == "cpu":
        say("note: bf16 weights and matmuls (LoRA's own weights in float32), as this CPU multiplies bf16 natively "
            "(--precision float32: all in float32)")
    if main:
        if run_id:
            runs.resume_run(store, run_id, from_step=int(Path(checkpoint).name.rsplit("-", 1)[-1]))
        else:
            run_id = runs.start_run(store, cfg.to_dict(), backend="local", method=cfg.method, base_model=cfg.model,
                                    data_path=cfg.data, output_dir=cfg.output, name=cfg.name)
    callbacks = list(extra_callbacks or [])
    if cfg.max_train_tokens:
        from engine.pipeline.training.callbacks import TokenBudget

        callbacks.append(TokenBudget(cfg.max_train_tokens))
    if cfg.gradient_checkpointing and not cfg.qlora:
        from engine.pipeline.training.callbacks import NoInputGrads

        callbacks.append(NoInputGrads())
    if main:
        from engine.pipeline.training.callbacks import StoreCallback

        callbacks.insert(0, StoreCallback(store, run_id, echo))
    try:
        trainer = build(model, tokenizer, callbacks)
        check_dataset(trainer, cfg, n_rows, say if main else None)
        if echo:  # our one line per step replaces the Trainer's printed dicts
            from transformers.trainer_callback import PrinterCallback, ProgressCallback

            trainer.remove_callback(PrinterCallback)
            trainer.remove_callback(ProgressCallback)
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except KeyboardInterrupt:
        if main:
            runs.interrupt_run(store, run_id, runs.last_checkpoint(cfg.output))
        raise
    except Exception as exc:
        if main:
            runs.fail_run(store, run_id, f"{type(exc).__name__}: {exc}")
        raise
    trainer.save_model(cfg.output)  # the adapter: adapter_config.json names the base model
    out: dict[str, Any] = {"run_id": run_id, "output": cfg.output, "metrics": {}, "model_id": None}
    if not main:
        return out
    tokenizer.save_pretrained(cfg.output)
    if reply:
        runs.write_reply_format(cfg.output, reply, reply_counts, layout)
    metrics = dict(result.metrics) | runs.loss_summary(store, run_id)
    metrics["global_step"] = trainer.state.global_step
    metrics["num_input_tokens_seen"] = trainer.state.num_input_tokens_seen
    metrics["precision"] = computes_in  # `auto` depends on the machine: the format this run computed in
    runs.finish_run(store, run_id, metrics)
    out["metrics"] = metrics
    out["model_id"] = runs.register_model(
        store, name=cfg.name, kind=f"lora-{cfg.method}", base_model=base_path, path=cfg.output, run_id=run_id,
        data_path=cfg.data, config={**cfg.to_dict(), "reply_format": reply}, metrics=metrics,
    )
    return out
