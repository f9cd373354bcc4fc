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
