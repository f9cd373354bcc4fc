"""One training configuration, from command-line flags, a YAML file, or both (flags win over the file).

The same dataclass is stored as the run's `config_json`, so `--resume` rebuilds exactly the run it continues.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import LabError
from engine.paths import resolve

BACKENDS = ("local", "openai")
METHODS = ("sft", "kto", "dpo", "grpo")  # grpo: online RL on the model's own games (training/grpo.py)
REPORT_TO = ("none", "wandb", "tensorboard")
LOSSES = ("labels", "full")
PRECISIONS = ("auto", "float32", "bf16")


@dataclass
class TrainConfig:
    """Everything a run needs; defaults suit the embedded SmolLM2 on a CPU."""

    model: str = "embedded"
    data: str = ""
    output: str = ""
    backend: str = "local"
    method: str = "sft"
    name: str = ""
    eval_data: str | None = None
    epochs: float | None = None  # local: 1; openai: the API's "auto"
    max_steps: int = -1
    max_train_tokens: int | None = None  # stop once this many training tokens were seen (equal-compute ablations)
    lr: float = 2e-4
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    # LoRA on the last N decoder layers only (None: every layer). The backward pass then stops at the lowest adapted
    # layer and only those layers keep activations: bench/train.py measures the time and memory it saves
    lora_layers: int | None = None
    # a step of 4 examples, one a forward pass: no padding, and the saved activations of one example only. The
    # same loss per step as 4 a pass; on a CPU, bf16 autocast over float32 weights without checkpointing, 179 against
    # 147 tokens/s (bench/train.py, stop 28)
    batch_size: int = 1
    grad_accum: int = 4
    max_seq_len: int = 1024
    packing: bool = False
    # SFT: "labels" projects only the reply's positions onto the vocabulary (label_loss.py); "full" is trl's own
    # loss over every position, kept as the comparison bench/train.py measures
    loss: str = "labels"
    # recompute each layer in the backward pass instead of keeping its activations: with the defaults (LoRA on every
    # layer, one example a pass, bf16) steps of up to 1,024 tokens peaked at 1.9 GB with it and 2.9 GB without, at
    # 141 against 209 tokens/s (the trainer before issue 15: 16 GB, 89; bench/train.py)
    gradient_checkpointing: bool = True
    # the base weights' and the matmuls' number format (LoRA's own weights stay float32). auto: bf16 on a GPU that
    # has it (else fp16) and on a CPU with native bf16 (avx512_bf16 or AMX), else float32. bf16: ask for it
    # (emulated, so slow, on a CPU without it); float32: never. bench/train.py measures what it saves on a CPU
    precision: str = "auto"
    save_steps: int = 50
    save_total_limit: int = 2
    logging_steps: int = 1
    seed: int = 42
    cpu_threads: int | None = None  # torch threads on the CPU; 1 is far faster when other jobs share the cores
    qlora: bool = False
    beta: float = 0.1  # KTO / DPO: strength of the pull towards the reference model
    num_generations: int = 4  # GRPO: completions sampled per prompt (batch_size x grad_accum must be a multiple)
    max_completion_length: int | None = None  # GRPO: tokens a sampled reply may take (None: by the reply format)
    # KTO: weights of the desirable / undesirable losses; trl asks for them when the labels are unbalanced
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0
    report_to: str = "none"
    # an existing LoRA adapter folder to continue training (its weights loaded as trainable; the lora_* settings
    # are then the adapter's own): `ptom-lab improve` carries each round's adapter into the next
    init_adapter: str | None = None
    # OpenAI backend
    suffix: str | None = None
    validation_data: str | None = None
    poll_s: float = 10.0

    def validate(self) -> TrainConfig:
        if self.backend not in BACKENDS:
            raise LabError(f"backend must be one of {', '.join(BACKENDS)}, not '{self.backend}'")
        if self.method not in METHODS:
            raise LabError(f"method must be one of {', '.join(METHODS)}, not '{self.method}'")
        if self.loss not in LOSSES:
            raise LabError(f"loss must be one of {', '.join(LOSSES)}, not '{self.loss}'")
        if self.precision not in PRECISIONS:
            raise LabError(f"precision must be one of {', '.join(PRECISIONS)}, not '{self.precision}'")
        if self.report_to not in REPORT_TO:
            raise LabError(f"report_to must be one of {', '.join(REPORT_TO)}, not '{self.report_to}'")
        if not self.data:
            raise LabError("no training data: give --data FILE.jsonl (or `data:` in the config file)")
        if self.backend == "local" and not self.output:
            raise LabError("no output folder: give --output models/NAME (or `output:` in the config file)")
        for name in ("batch_size", "grad_accum", "max_seq_len", "lora_r", "lora_alpha", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise LabError(f"{name} must be at least 1, got {getattr(self, name)}")
        if (self.epochs or 1.0) <= 0 and self.max_steps <= 0:
            raise LabError("nothing to train: set epochs > 0 or max_steps > 0")
        if self.desirable_weight <= 0 or self.undesirable_weight <= 0:
            raise LabError("desirable_weight and undesirable_weight must be positive")
        if self.lr <= 0:
            raise LabError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.lora_dropout < 1:
            raise LabError(f"lora_dropout is a probability from 0 up to (not including) 1, got {self.lora_dropout}")
        if self.beta <= 0:
            raise LabError(f"beta must be positive, got {self.beta}")
        if self.save_total_limit < 1 or self.poll_s <= 0 or (self.cpu_threads is not None and self.cpu_threads < 1):
            raise LabError("save_total_limit and cpu_threads must be at least 1, and poll_s positive, got "
                           f"{self.save_total_limit}, {self.cpu_threads} and {self.poll_s}")
        if (self.epochs is not None and self.epochs < 0) or self.max_steps < -1:
            raise LabError(f"epochs and max_steps may not be negative (max_steps -1: none), got {self.epochs} and "
                           f"{self.max_steps}")
        if self.lora_layers is not None and self.lora_layers < 1:
            raise LabError(f"lora_layers is how many of the last decoder layers get LoRA (at least 1), got "
                           f"{self.lora_layers}")
        if self.max_train_tokens is not None and self.max_train_tokens < 1:
            raise LabError(f"max_train_tokens must be at least 1, got {self.max_train_tokens}")
        if self.max_train_tokens is not None and self.backend == "openai":
            raise LabError("max_train_tokens stops a local run; the OpenAI API trains whole epochs (use epochs)")
        if self.init_adapter and self.backend == "openai":
            raise LabError("init_adapter continues a local LoRA adapter; an OpenAI fine-tune starts from --model")
        if self.init_adapter and not (Path(self.init_adapter) / "adapter_config.json").is_file():
            raise LabError(f"init_adapter: no LoRA adapter at '{self.init_adapter}' (expected adapter_config.json)")
        if not self.name:
            self.name = Path(self.output).name if self.output else Path(self.data).stem
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
_KIND_WORDS = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "a string"}


def _coerce(name: str, value: Any, source: str) -> Any:
    """YAML values to the field's declared type, with an error naming the key and where it came from.

    Nothing is guessed: `packing: maybe` or `lora_r: 2.5` is an error, never read as false or as 2."""
    kind = str(FIELDS[name].type)
    if value is None:
        return None
    wrong = LabError(f"{source}: '{name}' should be {_KIND_WORDS.get(kind.split(' ')[0], 'a string')}, got {value!r}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, str | int) else None
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise wrong
    if isinstance(value, bool) or isinstance(value, list | dict) and not kind.startswith("str | list"):
        raise wrong  # `epochs: yes` is not 1, and a list is not a number
    try:
        if kind.startswith("int"):
            number = float(value)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind.startswith("float"):
            return float(value)
    except (TypeError, ValueError):
        raise wrong from None
    if kind.startswith("str | list"):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        if isinstance(value, dict | list):
            raise LabError(f"{source}: '{name}' should be a string or a list of strings, got {value!r}")
    return str(value)


def from_dict(values: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Checked overrides: unknown keys are an error (a typo should not silently train with a default)."""
    out = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in FIELDS:
            raise LabError(f"{source}: unknown setting '{key}' (known: {', '.join(sorted(FIELDS))})")
        out[name] = _coerce(name, value, source)
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = resolve(path)  # a shipped `configs/...` file works from any folder
    if not p.exists():
        raise LabError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark else str(p)
        raise LabError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise LabError(f"{p}: the config must be a mapping of settings, e.g. `epochs: 2`")
    return from_dict(data, str(p))


def load_config(config_file: str | None = None, overrides: dict[str, Any] | None = None,
                base: dict[str, Any] | None = None) -> TrainConfig:
    """base (e.g. a resumed run's stored config) < YAML file < explicit overrides (flags given on the CLI)."""
    values: dict[str, Any] = {}
    if base:
        values.update(from_dict({k: v for k, v in base.items() if k in FIELDS}, "stored config"))
    if config_file:
        values.update(read_yaml(config_file))
    values.update(from_dict({k: v for k, v in (overrides or {}).items() if v is not None}, "command line"))
    return TrainConfig(**values).validate()
