"""Long work described as data: a `Job` (prepare, finetune, evaluate, generate or improve) and the child process that runs it.

A front end (the TUI) builds a job from the engine's own settings classes (`PrepareOptions`, `TrainConfig`,
`EvalConfig`, `GenerationPlan`) instead of an argv list for `python -m engine`, so a bad value is a `LabError` when
the job is built, not a line in a log minutes later. `start` runs the job in a child process of its own session:
a long training never blocks the UI, and it goes on when the UI quits (or its terminal closes). The job is handed to
the child pickled on stdin (`python -m engine.pipeline.jobs`); its output, and on failure its error, go to a log file.

Every job knows, before it starts, the name the store will know its work by (`Job.run`), so the UI can follow it
and say which run goes on after it quits. Nothing here imports the heavy engine modules until a job runs.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from engine.errors import LabError

if TYPE_CHECKING:
    from engine.pipeline.dataprep import PrepareOptions
    from engine.pipeline.evaluation import EvalConfig
    from engine.pipeline.improve import ImproveConfig
    from engine.pipeline.training.config import TrainConfig
    from engine.pipeline.trajectories import GenerationPlan
    from engine.store import Store

Kind = Literal["prepare", "finetune", "evaluate", "generate", "improve"]
KINDS: tuple[Kind, ...] = ("prepare", "finetune", "evaluate", "generate", "improve")
Say = Callable[[str], None]
Progress = Callable[[int, int | None], None]  # (done, total or None while not known yet)


def _quiet(done: int, total: int | None) -> None:
    """The child's default progress: its log has a line per step already."""


@dataclass(frozen=True)
class Job:
    """One piece of long work and the store it writes to.

    `run` is the name the store knows the job's work by, fixed before it starts: an evaluation run's name, a
    generation's sessions `run_id`, a training run's output folder (`runs.get_run` and `ptom-lab runs show` take
    it), or a prepared training file. `output` is the trajectory file a generate job writes.
    """

    kind: Kind
    settings: PrepareOptions | TrainConfig | EvalConfig | GenerationPlan | ImproveConfig
    db: str
    run: str
    output: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def describe(self) -> str:
        """One line for a notification or a quit dialog."""
        what = {"prepare": "preparing", "finetune": "training run", "evaluate": "evaluation run",
                "generate": "generation run", "improve": "improve run"}[self.kind]
        return f"{what} {self.run}"


def prepare_job(options: PrepareOptions, db: str) -> Job:
    if not Path(options.input).is_file():
        raise LabError(f"no trajectory file '{options.input}': load or generate one first")
    return Job("prepare", options, db, run=options.output)


def finetune_job(config: TrainConfig, db: str) -> Job:
    """A training run into a folder of its own: a folder that holds another run (in the store, or its files) is
    refused (`runs.check_output_free`, as `ptom-lab finetune` does), since the second run would overwrite the
    first's log and adapter."""
    from engine.pipeline.training.runs import check_output_free
    from engine.store import Store

    if not Path(config.data).is_file():
        raise LabError(f"no training file '{config.data}': make one in the Data pane (prepare)")
    store = Store(db)
    try:
        check_output_free(store, config.output)
    finally:
        store.close()
    return Job("finetune", config, db, run=config.output)


def evaluate_job(config: EvalConfig, db: str, name: str | None = None) -> Job:
    """The run's name is drawn here when none is given, so the store's row can be found before it exists."""
    from engine.pipeline.evaluation import plan_episodes

    plan_episodes(config)  # an unknown condition or an empty scenario file fails now, not in the child
    return Job("evaluate", config, db, run=name or f"{config.model}-{uuid.uuid4().hex[:6]}")


def generate_job(plan: GenerationPlan, output: str, db: str) -> Job:
    if plan.n < 1 or plan.repeats < 1:
        raise LabError(f"generate: n and repeats must be at least 1, got {plan.n} and {plan.repeats}")
    return Job("generate", plan, db, run=f"generate-{plan.seed}-{uuid.uuid4().hex[:8]}", output=output)


def improve_job(config: ImproveConfig, db: str) -> Job:
    """Rounds of `ptom-lab improve`; `run` is its folder (`ptom-lab runs show FOLDER`). A bad setting fails here."""
    return Job("improve", config.check(), db, run=config.out)


# ----- running a job (in the child, or in this process: tests, the Data pane) ----------------------------------------
def run(job: Job, say: Say = print, progress: Progress = _quiet) -> dict[str, Any]:
    """Do the job here and now (the child does; so does the TUI's Data pane in a thread worker, for its bar);
    returns what it made (ids, files). Errors are raised as they come."""
    from engine.store import Store

    store = Store(job.db)
    try:
        return _RUNNERS[job.kind](job, store, say, progress)
    finally:
        store.close()


def _prepare(job: Job, store: Store, say: Say, progress: Progress) -> dict[str, Any]:
    from engine.pipeline.dataprep import prepare, record_dataset

    progress(0, None)  # until prepare has read the file
    prepared = prepare(job.settings, lambda done, total, what: progress(done, total))
    ids = record_dataset(store, prepared, job.settings.format)
    for split, path in prepared.files.items():
        say(f"{split}: {path} ({prepared.rows.get(split, 0)} rows)")
    return {"files": {k: str(v) for k, v in prepared.files.items()}, "rows": prepared.rows, "datasets": ids,
            "summary": prepared.summary}


def _finetune(job: Job, store: Store, say: Say, progress: Progress) -> dict[str, Any]:
    from engine.pipeline.training import runs

    cfg = job.settings
    if cfg.backend == "openai":
        from engine.pipeline.training import openai_ft

        return openai_ft.train(cfg, store, say=say)
    from engine.pipeline.training import grpo, loop, preference, sft

    loop.check_environment(cfg)
    say(f"training {cfg.method} LoRA on {cfg.model} with {cfg.data} -> {cfg.output}")
    trainer = {"sft": sft, "grpo": grpo}.get(cfg.method, preference)  # grpo: a prompt file of games
    return trainer.train(cfg, store, echo=lambda row, total: say(runs.format_step(row, total)), say=say)


def _evaluate(job: Job, store: Store, say: Say, progress: Progress) -> dict[str, Any]:
    from engine.pipeline.evaluation import evaluate

    planned = [0, 0]  # total, done

    def on_start(total: int, done: int) -> None:
        planned[:] = [total, done]
        progress(done, total)

    def on_episode(episode: Any) -> None:
        planned[1] += 1
        progress(planned[1], planned[0])
        say(f"episode {episode.id} {episode.status}" + (f": {episode.error}" if episode.error else ""))

    result = evaluate(store, job.settings, name=job.run, on_start=on_start, on_episode=on_episode)
    say(f"run {result.run['name']} ({result.run['id']}): {result.played} played, {result.skipped} resumed")
    return {"run_id": result.run["id"], "name": result.run["name"]}


def _generate(job: Job, store: Store, say: Say, progress: Progress) -> dict[str, Any]:
    from engine.files import atomic_write
    from engine.pipeline.trajectories import BatchStoreWriter, generate_trajectories

    written = 0
    progress(0, job.settings.n)
    episodes = generate_trajectories(job.settings, [BatchStoreWriter(store)], {"run_id": job.run})
    try:
        with atomic_write(job.output) as fh:  # a failed or cancelled job leaves the file as it was
            for done, episode in enumerate(episodes, 1):
                if episode.status == "finished" and episode.outcome is not None:
                    fh.write(json.dumps(episode.to_trajectory(), ensure_ascii=False) + "\n")
                    written += 1
                progress(done, job.settings.n)
    except OSError as exc:
        raise LabError(f"cannot write {job.output}: {exc}") from exc
    say(f"{written} conversation(s) -> {job.output} (sessions of run {job.run})")
    return {"run_id": job.run, "written": written, "output": job.output}


def _improve(job: Job, store: Store, say: Say, progress: Progress) -> dict[str, Any]:
    from engine.pipeline.improve import improve

    result = improve(store, job.settings, say=say, progress=lambda what, done, total: progress(done, total))
    return {"run_id": result["run"]["id"], "rounds": len(result["rounds"]) - 1}


_RUNNERS: dict[str, Callable[[Job, Store, Say, Progress], dict[str, Any]]] = {
    "prepare": _prepare, "finetune": _finetune, "evaluate": _evaluate, "generate": _generate, "improve": _improve,
}


# ----- the child process -------------------------------------------------------------------------------------------
@dataclass
class JobProcess:
    """A job running in a child process; its output (and error) is in `log`."""

    job: Job
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        """The exit code once the child has ended, else None; never blocks."""
        return self.process.poll()

    def output(self, limit: int = 20_000) -> str:
        """The end of the child's log: on failure, the full error (a `LabError` line or a traceback)."""
        try:
            with open(self.log, "rb") as fh:
                fh.seek(max(0, self.log.stat().st_size - limit))
                return fh.read().decode("utf-8", errors="replace").replace("\r", "\n").strip()
        except OSError as exc:
            return f"(cannot read {self.log}: {exc})"


def start(job: Job, log: str | Path) -> JobProcess:
    """Run `job` in a child process of its own session (it outlives the caller); output goes to `log` (appended,
    so a log never loses an earlier run's lines)."""
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the log follows the work line by line
    with open(log, "ab") as fh:  # the child keeps its own handle
        process = subprocess.Popen([sys.executable, "-m", "engine.pipeline.jobs"], stdin=subprocess.PIPE, stdout=fh,
                                   stderr=subprocess.STDOUT, start_new_session=True, env=env)
    assert process.stdin is not None
    process.stdin.write(pickle.dumps(job))
    process.stdin.close()
    return JobProcess(job, process, log)


def main() -> int:
    """`python -m engine.pipeline.jobs`: run the pickled job on stdin. A `LabError` is one `error:` line (exit 2), anything
    else its traceback (exit 1), so the log holds the whole reason either way."""
    job: Job = pickle.loads(sys.stdin.buffer.read())
    try:
        result = run(job)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {job.describe()}", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        return 1
    print(f"done: {job.describe()}: {json.dumps(result, default=str)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
