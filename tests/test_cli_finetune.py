"""`ptom-lab finetune` and `ptom-lab runs`: clear one-line errors, and runs listed, shown and followed from the store."""

from __future__ import annotations

import importlib.util
import json
import threading
import time

import pytest

from engine.cli import main
from engine.pipeline.training import runs
from engine.store import Store


def _chat_file(tmp_path):
    path = tmp_path / "train.jsonl"
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]
    path.write_text(json.dumps({"messages": msgs}) + "\n")
    return str(path)


def test_qlora_without_cuda_stops_with_one_line(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    db = str(tmp_path / "s.db")
    code = main(["finetune", "--db", db, "--data", _chat_file(tmp_path), "--output", str(tmp_path / "m"), "--qlora"])
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2 and "needs a CUDA GPU" in err and "Traceback" not in err
    assert captured.out == ""  # the error is the only line: no "training ..." before it
    assert runs.list_runs(Store(db)) == []


def test_config_file_and_flag_errors(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: x.jsonl\noutput: m\nlearning_rate: 0.1\n")
    assert main(["finetune", "--db", str(tmp_path / "s.db"), "--config", str(cfg)]) == 2
    assert "unknown setting 'learning_rate'" in capsys.readouterr().err
    assert main(["finetune", "--db", str(tmp_path / "s.db"), "--data", str(tmp_path / "none.jsonl"), "--output", "m"]) == 2
    assert "training data not found" in capsys.readouterr().err


def test_openai_backend_without_key(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = main(["finetune", "--db", str(tmp_path / "s.db"), "--backend", "openai", "--data", _chat_file(tmp_path)])
    assert code == 2 and "OPENAI_API_KEY is not set" in capsys.readouterr().err


def _run_with_steps(db: str, n: int) -> str:
    store = Store(db)
    run_id = runs.start_run(store, {"lr": 1e-3}, backend="local", method="sft", base_model="embedded",
                            data_path="train.jsonl", output_dir="models/demo", name="demo")
    runs.update_run(store, run_id, total_steps=n)
    for i in range(1, n + 1):
        runs.add_step(store, run_id, {"step": i, "loss": 3.0 / i, "learning_rate": 1e-3, "tokens_per_s": 150.0})
    return run_id


def test_runs_list_and_show(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    run_id = _run_with_steps(db, 3)
    runs.interrupt_run(Store(db), run_id, "models/demo/checkpoint-2")
    assert main(["runs", "list", "--db", db]) == 0
    captured = capsys.readouterr()  # not a terminal: rows on stdout, the count on stderr
    assert "\tinterrupted\t" in captured.out and "1 run(s)" in captured.err
    assert main(["runs", "show", run_id[:10], "--db", db, "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "1 earlier step(s)" in out and "step 3/3  loss 1.0000" in out
    assert f"finetune --resume {run_id}" in out and "checkpoint-2" in out


def test_runs_follow_prints_new_steps_until_the_run_ends(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    run_id = _run_with_steps(db, 1)

    def trainer():  # another process would do this; a thread writing through its own Store is the same
        store = Store(db)
        time.sleep(0.3)
        runs.add_step(store, run_id, {"step": 2, "loss": 0.5})
        runs.finish_run(store, run_id, {"last_loss": 0.5})

    writer = threading.Thread(target=trainer)
    writer.start()
    code = main(["runs", "follow", run_id, "--db", db, "--interval", "0.05"])
    writer.join()
    out = capsys.readouterr().out
    assert code == 0
    assert "step 1/1" in out and "step 2/1  loss 0.5000" in out and "run finished" in out


def test_report_to_a_missing_package_stops_with_one_line(tmp_path, capsys):
    if importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed here")
    db = str(tmp_path / "s.db")
    code = main(["finetune", "--db", db, "--data", _chat_file(tmp_path), "--output", str(tmp_path / "m"),
                 "--report-to", "tensorboard"])
    captured = capsys.readouterr()
    assert code == 2 and "--report-to tensorboard needs the 'tensorboard' package: pip install tensorboard" in captured.err
    assert captured.out == "" and runs.list_runs(Store(db)) == []


def test_finetune_refuses_a_folder_that_holds_another_run(tmp_path, capsys):
    """A second run into a stored run's folder would truncate its train.log and overwrite its adapter: refused,
    naming the run, before anything loads; no new run is recorded."""
    db = str(tmp_path / "s.db")
    run_id = _run_with_steps(db, 1)  # trained into models/demo
    code = main(["finetune", "--db", db, "--data", _chat_file(tmp_path), "--output", "models/demo"])
    captured = capsys.readouterr()
    assert code == 2 and f"holds training run {run_id}" in captured.err and "Traceback" not in captured.err
    assert captured.out == "" and [r["id"] for r in runs.list_runs(Store(db))] == [run_id]


def test_runs_follow_offers_no_resume_into_a_folder_another_run_used(tmp_path, capsys):
    """An interrupted run whose folder a later run has finished into is not offered a resume (it would mix its
    checkpoints with the other run's adapter); one with its folder to itself is."""
    db = str(tmp_path / "s.db")
    store = Store(db)
    first = runs.start_run(store, {}, backend="local", method="sft", base_model="m", data_path="d",
                           output_dir="models/shared", name="first")
    runs.interrupt_run(store, first, None)
    assert main(["runs", "follow", first, "--db", db]) == 1
    assert f"resume it: ptom-lab finetune --resume {first}" in capsys.readouterr().out
    # start_run refuses a held folder now; a store written before it did (or by hand) can still hold this
    store.add_training_run({"id": "second-000000", "name": "second", "backend": "local", "method": "sft",
                            "output_dir": "models/shared", "status": "finished", "config_json": "{}"})
    assert main(["runs", "follow", first, "--db", db]) == 1
    out = capsys.readouterr().out
    assert "resume it" not in out and "not resumable" in out


def test_max_train_tokens_is_a_flag_and_a_bad_value_is_one_line(tmp_path, capsys):
    args = ["finetune", "--db", str(tmp_path / "s.db"), "--data", _chat_file(tmp_path), "--output", str(tmp_path / "m")]
    assert main([*args, "--max-train-tokens", "0"]) == 2
    assert "max_train_tokens must be at least 1, got 0" in capsys.readouterr().err
    assert main([*args, "--backend", "openai", "--max-train-tokens", "1000"]) == 2
    assert "max_train_tokens stops a local run" in capsys.readouterr().err
    assert runs.list_runs(Store(str(tmp_path / "s.db"))) == []


def test_init_adapter_is_a_flag_and_a_missing_adapter_is_one_line(tmp_path, capsys):
    args = ["finetune", "--db", str(tmp_path / "s.db"), "--data", _chat_file(tmp_path), "--output", str(tmp_path / "m")]
    assert main([*args, "--init-adapter", str(tmp_path / "none")]) == 2
    assert f"init_adapter: no LoRA adapter at '{tmp_path / 'none'}'" in capsys.readouterr().err
    assert main([*args, "--backend", "openai", "--init-adapter", str(tmp_path)]) == 2
    assert "init_adapter continues a local LoRA adapter" in capsys.readouterr().err
    assert runs.list_runs(Store(str(tmp_path / "s.db"))) == []


def test_finetune_takes_grpo_and_checks_its_prompt_file_before_loading(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    code = main(["finetune", "--db", db, "--method", "grpo", "--data", _chat_file(tmp_path), "--output", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and "train.jsonl:1: a grpo row needs prompt, scenario" in err and "Traceback" not in err
    assert runs.list_runs(Store(db)) == []
