"""Run records: lifecycle, a dead pid read as interrupted, lookup by output folder, steps and the step line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.errors import LabError
from engine.pipeline.training import runs
from engine.pipeline.training.data import load_rows
from engine.store import Store


def _start(store, output="models/demo"):
    return runs.start_run(store, {"data": "d.jsonl", "output": output}, backend="local", method="sft",
                          base_model="embedded", data_path="d.jsonl", output_dir=output, name="demo")


def test_lifecycle_and_lookup(store):
    run_id = _start(store)
    assert runs.get_run(store, run_id)["status"] == "running"  # this process is alive
    runs.add_step(store, run_id, {"step": 1, "loss": 2.5, "learning_rate": 1e-4, "tokens_per_s": 100.0, "logs": {"x": 1}})
    runs.add_step(store, run_id, {"step": 2, "loss": 2.0})
    assert [s["loss"] for s in store.training_steps(run_id)] == [2.5, 2.0]
    first = store.training_steps(run_id)[0]["id"]
    assert [s["step"] for s in store.training_steps(run_id, after_id=first)] == [2]
    runs.interrupt_run(store, run_id, "models/demo/checkpoint-2")
    row = runs.get_run(store, "models/demo")  # by output folder, as --resume takes it
    assert (row["id"], row["status"], row["checkpoint"]) == (run_id, "interrupted", "models/demo/checkpoint-2")
    runs.finish_run(store, run_id, {"last_loss": 2.0})
    assert runs.get_run(store, run_id[:8])["status"] == "finished"
    with pytest.raises(LabError, match="no training run"):
        runs.get_run(store, "nope")


def test_dead_pid_reads_as_interrupted(store):
    run_id = _start(store)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    runs.update_run(store, run_id, pid=proc.pid)
    assert runs.get_run(store, run_id)["status"] == "interrupted"
    assert [r["status"] for r in runs.list_runs(store)] == ["interrupted"]


def test_register_model(store):
    run_id = _start(store)
    model_id = runs.register_model(store, name="demo", kind="lora-sft", base_model="embedded", path="models/demo",
                                   run_id=run_id, data_path="d.jsonl", config={"lr": 1e-3}, metrics={"last_loss": 1.0})
    row = store.db["models"].get(model_id)
    assert (row["path"], row["run_id"], row["kind"]) == ("models/demo", run_id, "lora-sft")


def test_format_step():
    line = runs.format_step({"step": 3, "loss": 1.23456, "learning_rate": 2e-4, "grad_norm": 0.5,
                             "tokens_per_s": 151.2, "epoch": 0.25, "eta_s": 125}, 40)
    assert line == "step 3/40  loss 1.2346  lr 2.00e-04  grad 0.500  151 tok/s  epoch 0.25  eta 2m05s"
    assert "loss -" in runs.format_step({"step": 1})


def test_training_files_are_checked_by_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]}\n'
                   '{"messages": [{"role": "user", "content": "only a question"}]}\n')
    with pytest.raises(LabError, match=r"bad.jsonl:2: .*assistant"):
        load_rows(bad, "sft")
    kto = tmp_path / "kto.jsonl"
    kto.write_text('{"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}], "label": true}\n')
    with pytest.raises(LabError, match="both desirable"):
        load_rows(kto, "kto")
    with pytest.raises(LabError, match=r"kto.jsonl:1: a dpo row needs prompt, chosen, rejected"):
        load_rows(kto, "dpo")
    sharegpt = tmp_path / "sg.jsonl"
    sharegpt.write_text('{"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "u"}, {"from": "gpt", "value": "a"}]}\n')
    row = load_rows(sharegpt, "sft")[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"] and row["completion"][0]["content"] == "a"
    broken = tmp_path / "broken.jsonl"
    broken.write_text(sharegpt.read_text() + "\n" + '{"conversations": [\n')
    with pytest.raises(LabError, match=r"broken.jsonl:3: not valid JSON"):  # line 2 is blank: numbers stay true
        load_rows(broken, "sft")
    with pytest.raises(LabError, match="training data not found"):
        load_rows(tmp_path / "none.jsonl", "sft")


def test_each_run_gets_a_folder_of_its_own_and_a_used_one_is_refused(tmp_path):
    """`new_output_dir` never repeats (two runs started in the same second); `check_output_free` names the run
    that holds a folder, refuses a folder with files, and lets a run resume into its own folder."""
    assert runs.new_output_dir() != runs.new_output_dir()
    store = Store(str(tmp_path / "s.db"))
    held = str(tmp_path / "held")
    run_id = runs.start_run(store, {}, backend="local", method="sft", base_model="m", data_path="d",
                            output_dir=held, name="held")
    with pytest.raises(LabError, match=f"holds training run {run_id}"):
        runs.check_output_free(store, held)
    runs.check_output_free(store, held, resume=run_id)
    files = tmp_path / "files"
    files.mkdir()
    (files / "train.log").write_text("an earlier run\n")
    with pytest.raises(LabError, match=r"holds another run's files \(train.log\)"):
        runs.check_output_free(store, files)
    runs.check_output_free(store, tmp_path / "fresh")
    # two runs that both passed the check before either had a row: the second's row is refused, not added
    with pytest.raises(LabError, match=f"holds training run {run_id} .*started at the same time"):
        runs.start_run(store, {}, backend="local", method="sft", base_model="m", data_path="d", output_dir=held,
                       name="second")
    assert [r["id"] for r in runs.output_holders(store, held)] == [run_id]


def _row(text: str) -> dict:
    return {"prompt": [{"role": "user", "content": "u"}], "completion": [{"role": "assistant", "content": text}]}


FULL = "REASONING: B is cheap.\nCOUNTERFACTUAL: none\nMOVES: disclose B.cost\nMESSAGE: B saves money."
COMPACT = "MOVES: disclose B.cost\nMESSAGE: B saves money."


def test_reply_format_is_read_from_the_rows_and_a_mix_is_one_warning():
    said: list[str] = []
    rows = [_row(FULL)] * 3 + [_row("BELIEF: cost like 0.8\n" + COMPACT), _row("I will not answer.")]
    counts = runs.reply_format_counts(rows)
    assert counts == {"full": 3, "compact": 1, "moves": 0}  # BELIEF is skipped to the format's first label; free text counts nowhere
    assert runs.detect_reply_format(counts, said.append) == "full"
    assert len(said) == 1 and "3 full, 1 compact" in said[0] and "recorded as full" in said[0]
    said.clear()
    moves = runs.reply_format_counts([_row("MOVES: disclose B.cost; ask_choice")] * 2 + [_row(COMPACT)])
    assert moves == {"full": 0, "compact": 1, "moves": 2}  # MOVES without a MESSAGE line: the `moves` format
    assert runs.detect_reply_format(moves, said.append) == "moves"
    assert "1 compact, 2 moves" in said[0]
    said.clear()
    dpo = [{"prompt": [], "chosen": [{"role": "assistant", "content": "COUNTERFACTUAL: x\n" + COMPACT}]}]
    assert runs.detect_reply_format(runs.reply_format_counts(dpo), said.append) == "full" and said == []
    assert runs.detect_reply_format(runs.reply_format_counts([_row("hello")])) is None


def test_reply_format_record_round_trips_and_a_bad_one_is_named(tmp_path):
    assert runs.read_reply_format(tmp_path) is None  # a base model: nothing recorded
    runs.write_reply_format(tmp_path, "compact", {"full": 0, "compact": 4})
    assert runs.read_reply_format(tmp_path) == "compact"
    assert [p.name for p in tmp_path.iterdir()] == [runs.REPLY_FILE]  # no temporary file left behind
    (tmp_path / runs.REPLY_FILE).write_text('{"reply_format": "terse"}')
    with pytest.raises(LabError, match="unknown reply format 'terse'"):
        runs.read_reply_format(tmp_path)
    (tmp_path / runs.REPLY_FILE).write_text("{")
    with pytest.raises(LabError, match="not a readable reply-format record"):
        runs.read_reply_format(tmp_path)


def test_token_budget_stops_training_once_reached():
    from transformers import TrainerControl, TrainerState

    from engine.pipeline.training.callbacks import TokenBudget

    budget, state, control = TokenBudget(100), TrainerState(), TrainerControl()
    state.num_input_tokens_seen = 99
    budget.on_step_end(None, state, control)
    assert not control.should_training_stop
    state.num_input_tokens_seen = 100
    budget.on_step_end(None, state, control)
    assert control.should_training_stop


def test_no_input_grads_undoes_the_embedding_hook_checkpointing_adds():
    """With the hook off, a LoRA on the last layers only gets no gradient path through the frozen layers below."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.llm.embedded import embedded_model_dir
    from engine.pipeline.training.callbacks import NoInputGrads

    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], layers_to_transform=[29],
                                             layers_pattern="layers"))
    seen = []
    ids = torch.tensor([[1, 2, 3]])
    model.enable_input_require_grads()  # what the Trainer does when it turns checkpointing on under PEFT
    model.get_input_embeddings().register_forward_hook(lambda module, args, out: seen.append(out.requires_grad))
    model(input_ids=ids)
    NoInputGrads().on_train_begin(None, None, None, model=model)
    model(input_ids=ids).logits.sum().backward()
    assert seen == [True, False]
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)
