"""TrainConfig: flags over YAML over a stored config, and errors that name the setting and the file."""

from __future__ import annotations

import pytest

from engine.errors import LabError
from engine.pipeline.training.config import load_config


def test_cli_overrides_yaml(tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("data: a.jsonl\noutput: models/demo\nlora-r: 8\nepochs: 3\npacking: true\n")
    cfg = load_config(str(cfg_file), {"lora_r": 4, "epochs": None, "lr": 1e-4})
    assert (cfg.lora_r, cfg.epochs, cfg.packing, cfg.lr) == (4, 3.0, True, 1e-4)
    assert cfg.name == "demo"  # from the output folder


def test_stored_config_is_the_base_for_resume(tmp_path):
    base = {"data": "a.jsonl", "output": "models/x", "max_steps": 10, "seed": 7}
    cfg = load_config(None, {"max_steps": 20}, base)
    assert (cfg.max_steps, cfg.seed, cfg.output) == (20, 7, "models/x")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data: a.jsonl\noutput: m\nlora_rank: 8\n", "unknown setting 'lora_rank'"),
        ("data: a.jsonl\noutput: m\nepochs: many\n", "'epochs' should be a number"),
        ("data: a.jsonl\noutput: m\npacking: maybe\n", "'packing' should be true or false, got 'maybe'"),
        ("data: a.jsonl\noutput: m\nlora_r: 2.5\n", "'lora_r' should be a whole number, got 2.5"),
        ("data: a.jsonl\noutput: m\nepochs: yes\n", "'epochs' should be a number, got True"),
        ("data: [a\n", "not valid YAML"),
        ("- 1\n", "must be a mapping"),
    ],
)
def test_bad_yaml_names_the_problem(tmp_path, text, message):
    cfg_file = tmp_path / "bad.yaml"
    cfg_file.write_text(text)
    with pytest.raises(LabError, match=message) as err:
        load_config(str(cfg_file))
    assert str(cfg_file) in str(err.value)


def test_missing_and_invalid_values():
    with pytest.raises(LabError, match="no training data"):
        load_config(None, {"output": "m"})
    with pytest.raises(LabError, match="no output folder"):
        load_config(None, {"data": "a.jsonl"})
    with pytest.raises(LabError, match="method must be one of"):
        load_config(None, {"data": "a.jsonl", "output": "m", "method": "ppo"})
    with pytest.raises(LabError, match="batch_size must be at least 1"):
        load_config(None, {"data": "a.jsonl", "output": "m", "batch_size": 0})
    # the OpenAI backend needs no output folder
    assert load_config(None, {"data": "a.jsonl", "backend": "openai"}).name == "a"



@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"lora_dropout": 3}, "lora_dropout is a probability from 0 up to"),
        ({"beta": 0}, "beta must be positive"),
        ({"max_steps": -5}, "may not be negative"),
        ({"save_total_limit": 0}, "save_total_limit and cpu_threads must be at least 1"),
    ],
)
def test_out_of_range_values_are_refused_before_training(setting, message):
    with pytest.raises(LabError, match=message):
        load_config(None, {"data": "a.jsonl", "output": "m", **setting})


def test_booleans_are_read_as_written_never_guessed(tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("data: a.jsonl\noutput: m\npacking: 'off'\nqlora: yes\ntarget_modules: [q_proj, v_proj]\n")
    cfg = load_config(str(cfg_file))
    assert (cfg.packing, cfg.qlora, cfg.target_modules) == (False, True, ["q_proj", "v_proj"])

def test_example_config_in_configs_loads():
    cfg = load_config("configs/finetune-smollm2.yaml")
    assert cfg.method == "sft" and cfg.output


def test_loss_and_checkpointing_options(tmp_path):
    from engine.pipeline.training.loop import training_kwargs

    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("data: a.jsonl\noutput: m\nloss: full\ngradient-checkpointing: 'off'\n")
    cfg = load_config(str(cfg_file))
    assert (cfg.loss, cfg.gradient_checkpointing) == ("full", False)
    default = load_config(None, {"data": "a.jsonl", "output": "m"})
    assert (default.loss, default.gradient_checkpointing) == ("labels", True)
    kwargs = training_kwargs(default, has_eval=False)
    assert kwargs["activation_checkpointing"] is True
    assert kwargs["activation_checkpointing_kwargs"] == {"use_reentrant": False}
    assert training_kwargs(cfg, has_eval=False)["activation_checkpointing"] is False
    with pytest.raises(LabError, match="loss must be one of labels, full, not 'reply'"):
        load_config(None, {"data": "a.jsonl", "output": "m", "loss": "reply"})
    cfg_file.write_text("data: a.jsonl\noutput: m\ngradient_checkpointing: sometimes\n")
    with pytest.raises(LabError, match="'gradient_checkpointing' should be true or false, got 'sometimes'"):
        load_config(str(cfg_file))


def test_lora_layers_adapts_only_the_last_decoder_layers():
    """`lora_layers: N` puts LoRA on the last N layers (every linear module of them); 0 and too many are refused."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.llm.embedded import embedded_model_dir
    from engine.pipeline.training.loop import lora_config

    cfg = load_config(None, {"data": "a.jsonl", "output": "m", "lora_layers": 3})
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32)
    adapted = get_peft_model(model, lora_config(cfg, model))
    layers = {int(n.split(".layers.")[1].split(".")[0]) for n, p in adapted.named_parameters() if p.requires_grad}
    assert layers == {27, 28, 29}
    kinds = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, p in adapted.named_parameters() if p.requires_grad}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    with pytest.raises(LabError, match="only 30 decoder layers"):
        lora_config(load_config(None, {"data": "a.jsonl", "output": "m", "lora_layers": 31}), model)
    with pytest.raises(LabError, match="at least 1"):
        load_config(None, {"data": "a.jsonl", "output": "m", "lora_layers": 0})


def test_precision_must_be_known():
    with pytest.raises(LabError, match="precision must be one of auto, float32, bf16, not 'fp8'"):
        load_config(None, {"data": "a.jsonl", "output": "m", "precision": "fp8"})
