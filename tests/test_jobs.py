"""Jobs as data (`engine.pipeline.jobs`): built from the engine's settings, run here or in a child process that logs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from engine.errors import LabError
from engine.pipeline import jobs
from engine.pipeline.dataprep import PrepareOptions
from engine.pipeline.evaluation import EvalConfig
from engine.pipeline.training.config import TrainConfig
from engine.pipeline.trajectories import GenerationPlan
from engine.store import Store

HELDOUT = str(Path(__file__).resolve().parent.parent / "scenarios" / "heldout.jsonl")


def wait(process: jobs.JobProcess, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while (code := process.poll()) is None:
        assert time.monotonic() < deadline, process.output()
        time.sleep(0.1)
    return code


def test_generate_then_prepare_in_this_process(tmp_path):
    db = str(tmp_path / "s.db")
    out = tmp_path / "traj.jsonl"
    job = jobs.generate_job(GenerationPlan(n=3), str(out), db)
    said: list[str] = []
    assert jobs.run(job, said.append)["written"] == 3
    assert len(out.read_text().splitlines()) == 3 and "3 conversation(s)" in said[-1]
    store = Store(db)
    assert store.count_sessions(kind="generate") == 3
    assert {json.loads(r["meta_json"] or "{}").get("run_id") for r in store.db.query("SELECT meta_json FROM sessions")} \
        in ({job.run}, {None})  # the job's run id, where the store keeps it
    store.close()
    made = jobs.run(jobs.prepare_job(PrepareOptions(input=str(out), output=str(tmp_path / "train.jsonl")), db))
    assert made["rows"]["train"] > 0 and Path(made["files"]["train"]).is_file() and made["datasets"]


def test_an_evaluation_runs_in_a_child_process_under_its_known_name(tmp_path):
    db = str(tmp_path / "s.db")
    job = jobs.evaluate_job(EvalConfig(model="random", num_eval=2, scenarios=HELDOUT), db)
    process = jobs.start(job, tmp_path / "logs" / "eval.log")
    assert wait(process) == 0, process.output()
    store = Store(db)
    row = store.find_eval_run(job.run)
    assert row["status"] == "finished" and row["persuader"] == "random"
    assert f"done: evaluation run {job.run}" in process.output()


def test_a_failed_child_leaves_its_whole_error_in_the_log(tmp_path):
    job = jobs.evaluate_job(EvalConfig(model="no-such-agent", num_eval=1, scenarios=HELDOUT), str(tmp_path / "s.db"))
    process = jobs.start(job, tmp_path / "eval.log")
    assert wait(process) == 2
    assert "error:" in process.output() and "no-such-agent" in process.output()


def test_bad_settings_fail_when_the_job_is_built(tmp_path):
    db = str(tmp_path / "s.db")
    with pytest.raises(LabError, match="condition"):
        jobs.evaluate_job(EvalConfig(model="random", condition="sideways", scenarios=HELDOUT), db)
    with pytest.raises(LabError, match="no trajectory file"):
        jobs.prepare_job(PrepareOptions(input=str(tmp_path / "none.jsonl"), output="x.jsonl"), db)
    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "train.log").write_text("an earlier run\n")
    with pytest.raises(LabError, match="holds another run"):
        jobs.finetune_job(TrainConfig(data=str(data), output=str(tmp_path / "used")), db)
    job = jobs.finetune_job(TrainConfig(data=str(data), output=str(tmp_path / "fresh")), db)
    assert job.run == str(tmp_path / "fresh") and job.describe().startswith("training run")
