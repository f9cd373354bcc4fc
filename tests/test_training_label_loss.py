"""The labels-only SFT loss equals trl's own, value and gradients, on real batches of the embedded model.

The model is the embedded SmolLM2 cut to two decoder layers (as in test_trl_consumers) under a real LoRA adapter,
so the logits go through PEFT's wrapper and trl's patched forward as in a run; the stock loss is trl's
`SFTTrainer.compute_loss` called on the same trainer, model and batch.
"""

from __future__ import annotations

import pytest
import torch

from engine.pipeline.training import loop, sft
from engine.pipeline.training.config import load_config
from engine.pipeline.training.label_loss import LabelLossSFTTrainer, next_token_positions
from tests.training_rows import chat_rows

pytestmark = pytest.mark.slow
LAYERS = 2


def test_next_token_positions_line_up_with_the_shifted_labels():
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, 8, 9, 4]])
    keep, targets = next_token_positions(labels)
    assert keep.tolist() == [[False, True, True, False, False], [True, True, True, True, False]]
    assert targets.tolist() == [5, 6, 7, 8, 9, 4]


def build(tmp_path, packing: bool) -> LabelLossSFTTrainer:
    """A labels-loss trainer over a two-layer embedded model with LoRA (no dropout: both losses see one model), in
    float32 on every CPU (`auto` would load bf16 weights where the CPU has bf16)."""
    from datasets import Dataset

    from engine.pipeline.dataprep import to_prompt_completion

    cfg = load_config(None, dict(data="unused.jsonl", output=str(tmp_path / "out"), batch_size=3, max_seq_len=96,
                                 packing=packing, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                                 gradient_checkpointing=False, precision="float32"))
    torch.manual_seed(0)
    model, tokenizer, _ = loop.load_base(cfg)
    model.model.layers = model.model.layers[:LAYERS]
    model.config.num_hidden_layers = LAYERS
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:LAYERS]
    config_class, trainer_class, method_kwargs = sft.trainer_parts(cfg)
    assert trainer_class is LabelLossSFTTrainer
    rows = chat_rows(6)
    rows[1]["messages"][2]["content"] += " A longer reply, so the rows differ in length." * 3
    trainer = trainer_class(model=model, args=config_class(**loop.training_kwargs(cfg, False), **method_kwargs),
                            processing_class=tokenizer, peft_config=loop.lora_config(cfg),
                            train_dataset=Dataset.from_list([to_prompt_completion(r) for r in rows]))
    for p in trainer.model.parameters():  # LoRA B starts at zero: make the adapter matter to the comparison
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)
    return trainer


def loss_and_grads(trainer, compute_loss, batch, num_items):
    trainer.model.zero_grad()
    loss = compute_loss(trainer, trainer.model, dict(batch), num_items_in_batch=num_items)
    loss.backward()
    metrics = {k: trainer._metrics["train"][k][-1] for k in ("entropy", "mean_token_accuracy")}
    grads = [p.grad.clone() for p in trainer.model.parameters() if p.requires_grad]
    return loss.item(), grads, metrics


@pytest.mark.parametrize("packing", [False, True])
def test_labels_loss_equals_the_stock_loss(tmp_path, monkeypatch, packing):
    from trl import SFTTrainer

    from engine.pipeline.training import label_loss

    monkeypatch.setattr(label_loss, "CHUNK", 16)  # several chunks, the last one short
    trainer = build(tmp_path, packing)
    trainer.model.train()
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert 0 < labelled < batch["labels"].numel() - 20  # the prompts carry no label: the case this loss is for
    if packing:
        assert batch["input_ids"].shape[0] == 1 and "position_ids" in batch  # padding-free rows
    # without num_items_in_batch (one batch: its own labelled tokens) and with it (gradient accumulation's count)
    for num_items in (None, torch.tensor(3 * labelled)):
        stock = loss_and_grads(trainer, SFTTrainer.compute_loss, batch, num_items)
        ours = loss_and_grads(trainer, LabelLossSFTTrainer.compute_loss, batch, num_items)
        assert ours[0] == pytest.approx(stock[0], abs=1e-4) and ours[0] > 0
        for a, b in zip(ours[1], stock[1], strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-3)
        assert ours[2] == pytest.approx(stock[2], abs=1e-4)
    assert trainer._metrics["train"]["num_tokens"] == [trainer._total_train_tokens] and trainer._total_train_tokens > 0
