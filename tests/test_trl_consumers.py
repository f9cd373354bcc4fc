"""The real consumers read our files: trl's SFTTrainer (chatml, via `to_prompt_completion`) and KTOTrainer (kto).

They train for two steps on the embedded model: its weights, tokenizer and chat template, cut to its first
two of 30 decoder layers with the (tied) embedding frozen, on games of a two-proposal scenario, so that both
trainers fit the test budget on a 2-core CPU. What is checked here is that trl reads, tokenizes, masks and trains
on our files; the full model trains in the finetuning tests and bench.
"""

from __future__ import annotations

import copy
import json
import math

import pytest

from engine.game.episode import play
from engine.game.scenario import Scenario
from engine.pipeline.dataprep import PrepareOptions, prepare, to_prompt_completion
from engine.players.persuaders.baselines import RandomPersuader, RevealAll
from engine.players.targets.rational import PERSONALITIES, RationalTarget

pytest.importorskip("trl")
LAYERS = 2
TINY = {
    "id": "tiny-lunch", "title": "Lunch", "story": "Pick lunch.", "target_role": "Sam", "persuader_role": "Kim",
    "proposals": [{"id": "A", "name": "soup"}, {"id": "B", "name": "pizza"}],
    "attributes": [{"id": "cost", "name": "cost", "more": "costs more", "less": "costs less"},
                   {"id": "taste", "name": "taste", "more": "tastes better", "less": "tastes worse"}],
    "effects": {"A": {"cost": -1, "taste": 1}, "B": {"cost": 1, "taste": 1}},
    "preferences": {"cost": -1, "taste": 1}, "target_knows": ["B.taste"], "goal": "A", "max_turns": 3,
}


@pytest.fixture(scope="module")
def embedded():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.llm.embedded import embedded_model_dir

    torch.manual_seed(0)
    path = embedded_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.model.layers = model.model.layers[:LAYERS]
    model.config.num_hidden_layers = LAYERS
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:LAYERS]
    model.get_input_embeddings().weight.requires_grad_(False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the suite shares 2 cores with other work: one thread avoids oversubscription
    yield model, tokenizer
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """chatml and kto files prepared from a dozen games of the two-proposal scenario (about 200 tokens an example)."""
    tmp = tmp_path_factory.mktemp("trl")
    scenario = Scenario.from_dict(TINY)
    src = tmp / "trajectories.jsonl"
    with open(src, "w") as fh:
        for i in range(12):
            persuader = RevealAll() if i % 2 else RandomPersuader()
            ep = play(scenario, persuader, RationalTarget(), personality=list(PERSONALITIES)[i % 6], seed=i)
            fh.write(json.dumps(ep.to_trajectory()) + "\n")
    out = {}
    for fmt in ("chatml", "kto"):
        prepare(PrepareOptions(str(src), str(tmp / f"{fmt}.jsonl"), fmt))
        rows = [json.loads(line) for line in (tmp / f"{fmt}.jsonl").read_text().splitlines()]
        out[fmt] = [r for r in rows if "The conversation starts" in json.dumps(r)]  # first turns: the shortest
    return out


def _args(config_cls, tmp_path, **extra):
    return config_cls(
        output_dir=str(tmp_path), max_steps=2, learning_rate=1e-4, logging_steps=1, report_to="none",
        save_strategy="no", use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, max_length=512,
        gradient_checkpointing=False, **extra,
    )


def test_sft_trainer_reads_chatml_with_loss_on_the_completion(embedded, files, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = embedded
    rows = files["chatml"][:2]
    assert rows and all([m["role"] for m in r["messages"]] == ["system", "user", "assistant"] for r in rows)
    data = Dataset.from_list([to_prompt_completion(r) for r in rows])
    trainer = SFTTrainer(model=model, args=_args(SFTConfig, tmp_path, per_device_train_batch_size=1),
                         train_dataset=data, processing_class=tokenizer)
    first = trainer.train_dataset[0]
    ids = first["input_ids"]
    mask = first["completion_mask"] if "completion_mask" in first else [int(x != -100) for x in first["labels"]]
    learned = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert learned.startswith(rows[0]["messages"][2]["content"])  # the persuader's reply, and only that
    assert "<|im_start|>" not in learned and len(learned) < len(rows[0]["messages"][2]["content"]) + 20
    result = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert trainer.state.global_step == 2 and len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert math.isfinite(result.training_loss)


def test_kto_trainer_reads_kto(embedded, files, tmp_path):
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    model, tokenizer = embedded
    rows = sorted(files["kto"], key=lambda r: r["label"])
    rows = rows[:2] + rows[-2:]
    assert {r["label"] for r in rows} == {True, False}  # desirable and undesirable examples both present
    data = Dataset.from_list(rows)
    reference = copy.deepcopy(model).eval()  # else trl loads a full-size reference from the model's path
    trainer = KTOTrainer(model=model, ref_model=reference, args=_args(KTOConfig, tmp_path, per_device_train_batch_size=2),
                         train_dataset=data, processing_class=tokenizer)
    assert len(trainer.train_dataset) == 4  # nothing dropped as over-long or empty
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert trainer.state.global_step == 2 and losses and all(math.isfinite(x) for x in losses)
