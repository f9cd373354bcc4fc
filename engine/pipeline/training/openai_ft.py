"""Fine-tuning GPT models through the OpenAI API, recorded in the store like a local run.

Validate the file against the API's rules (`engine.pipeline.openai_format`), upload it, create the job, then follow the
job's events: each `metrics` event becomes a `training_steps` row, so `runs follow` and the TUI show an OpenAI
job the way they show a local one. Success registers the `ft:` model in `models`; failure shows OpenAI's own
reason. The job id is kept as the run's checkpoint: Ctrl-C stops following (the job goes on at OpenAI) and
`--resume RUN` follows it again. Everything goes through the `openai` SDK, which honours OPENAI_BASE_URL.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from engine.errors import LabError
from engine.pipeline.training import runs
from engine.pipeline.training.config import TrainConfig
from engine.store import Store

TERMINAL = ("succeeded", "failed", "cancelled")
MAX_RETRIES = 5  # the SDK's retries (with backoff) of a lost connection, a rate limit or a server error
Say = Callable[[str], None]


def client():
    """The SDK client; the key is read from the environment by the SDK and never stored or logged."""
    if not os.environ.get("OPENAI_API_KEY"):
        raise LabError("OPENAI_API_KEY is not set: export it (and OPENAI_BASE_URL for another server) "
                       "before `finetune --backend openai`; nothing was sent")
    from openai import OpenAI

    return OpenAI(max_retries=MAX_RETRIES)


def base_model(cfg: TrainConfig) -> str:
    from engine.llm.embedded import EMBEDDED_ALIASES
    from engine.llm.pricing import DEFAULT_MODEL

    return DEFAULT_MODEL if cfg.model in EMBEDDED_ALIASES else cfg.model


def validate(path: str, model: str) -> int:
    """The number of examples; every breach of the API's rules is a LabError naming its line."""
    from engine.llm.pricing import PRICES
    from engine.pipeline.openai_format import validate_file

    known = PRICES.get(model)
    report = validate_file(path, token_limit=known.example_token_limit if known else None)
    if not report.ok:
        lines = [b.text(report.path) for b in report.breaches[:5]]
        more = f" (and {len(report.breaches) - 5} more)" if len(report.breaches) > 5 else ""
        raise LabError("the file breaks the OpenAI fine-tuning rules" + more + ":\n  " + "\n  ".join(lines))
    return report.examples


def _api_error(exc: Exception, doing: str) -> LabError:
    message = getattr(exc, "message", None) or str(exc)
    return LabError(f"OpenAI API error while {doing}: {message}")


def train(cfg: TrainConfig, store: Store, *, resume: str | None = None, say: Say = print) -> dict[str, Any]:
    """Validate, upload, create the job (or, with `resume`, pick up a recorded one) and follow it to its end."""
    import openai

    api = client()
    if resume:
        row = runs.get_run(store, resume)
        if row["backend"] != "openai" or not row["checkpoint"]:
            raise LabError(f"run {row['id']} is not an OpenAI fine-tuning job")
        run_id, job_id = row["id"], row["checkpoint"]
        runs.resume_run(store, run_id)
        say(f"following OpenAI job {job_id} again (run {run_id})")
    else:
        model = base_model(cfg)
        n = validate(cfg.data, model)
        if cfg.validation_data:
            validate(cfg.validation_data, model)
        try:
            with open(cfg.data, "rb") as fh:
                upload = api.files.create(file=fh, purpose="fine-tune")
            say(f"uploaded {cfg.data} ({n} examples) as {upload.id}")
            validation_id = None
            if cfg.validation_data:
                with open(cfg.validation_data, "rb") as fh:
                    validation_id = api.files.create(file=fh, purpose="fine-tune").id
            hyper: dict[str, Any] = {"n_epochs": int(cfg.epochs) if cfg.epochs else "auto"}
            job = api.fine_tuning.jobs.create(
                model=model, training_file=upload.id, validation_file=validation_id or openai.omit,
                suffix=cfg.suffix or openai.omit, seed=cfg.seed,
                method={"type": "supervised", "supervised": {"hyperparameters": hyper}},
            )
        except openai.APIError as exc:
            raise _api_error(exc, "creating the job") from None
        job_id = job.id
        config = cfg.to_dict() | {"model": model}
        run_id = runs.start_run(store, config, backend="openai", method="sft", base_model=model,
                                data_path=cfg.data, output_dir="", name=cfg.name)
        runs.update_run(store, run_id, checkpoint=job_id)
        say(f"created OpenAI job {job_id} (run {run_id}); following its events")
    try:
        return follow_job(api, store, run_id, job_id, poll_s=cfg.poll_s, say=say)
    except KeyboardInterrupt:
        runs.interrupt_run(store, run_id, job_id)
        say(f"stopped following; job {job_id} goes on at OpenAI. `ptom-lab finetune --resume {run_id}` follows it again")
        raise


def follow_job(api, store: Store, run_id: str, job_id: str, *, poll_s: float, say: Say = print) -> dict[str, Any]:
    """Poll the job and its events until it ends; metrics events become training steps."""
    import json

    import openai

    # resumed: metrics events already recorded are not recorded twice
    seen_ids = {json.loads(r["logs_json"] or "{}").get("event_id") for r in store.training_steps(run_id)}
    while True:
        try:
            job = api.fine_tuning.jobs.retrieve(job_id)
            # newest first, page after page (the SDK follows `after`) back to the newest event already recorded:
            # a long job, or one followed again after a while, has more new events than one page holds
            events = []
            for event in api.fine_tuning.jobs.list_events(job_id, limit=100):
                if event.id in seen_ids:
                    break
                events.append(event)
        except openai.APIError as exc:
            raise _stop_following(store, run_id, job_id, exc) from None
        for event in reversed(events):  # oldest first into the store
            seen_ids.add(event.id)
            _record(store, run_id, event, say)
        if job.status in TERMINAL:
            return _finish(store, run_id, job, say)
        time.sleep(poll_s)


def _stop_following(store: Store, run_id: str, job_id: str, exc: Exception) -> LabError:
    """Record why following stopped, so the run never stays `running` with nobody following it.

    A job OpenAI no longer knows (404) has failed, with that reason; anything else (a lost connection, a server
    error after the SDK's retries) only stopped the following: the run is interrupted and `--resume` follows the
    job again, which goes on at OpenAI meanwhile."""
    import openai

    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, openai.NotFoundError):
        reason = f"OpenAI no longer knows job {job_id} ({message})"
        runs.fail_run(store, run_id, reason)
        return LabError(f"run {run_id} failed: {reason}")
    runs.interrupt_run(store, run_id, job_id)
    return LabError(f"lost OpenAI job {job_id} while following it ({message}); run {run_id} is marked interrupted "
                    f"and the job goes on at OpenAI: `ptom-lab finetune --resume {run_id}` follows it again")


def _record(store: Store, run_id: str, event, say: Say) -> None:
    data = event.data or {}
    if event.type == "metrics" and isinstance(data, dict) and "step" in data:
        logs = dict(data, event_id=event.id)
        total = data.get("total_steps")
        if total:
            runs.update_run(store, run_id, total_steps=int(total))
        step = {"step": int(data["step"]), "loss": data.get("train_loss"), "epoch": data.get("epoch"), "logs": logs}
        runs.add_step(store, run_id, step)
        loss = f"{step['loss']:.4f}" if isinstance(step["loss"], (int, float)) else "-"
        say(f"step {step['step']}{f'/{total}' if total else ''}  loss {loss}")  # the terminal sees the loss as it comes
        return
    say(f"[{event.level}] {event.message}")


def _finish(store: Store, run_id: str, job, say: Say) -> dict[str, Any]:
    metrics: dict[str, Any] = {"job_id": job.id, "status": job.status, "trained_tokens": job.trained_tokens}
    metrics |= runs.loss_summary(store, run_id)
    if job.status != "succeeded":
        reason = job.error.message if job.error and job.error.message else f"the job was {job.status}"
        code = f" ({job.error.code})" if job.error and job.error.code else ""
        runs.fail_run(store, run_id, f"{reason}{code}")
        raise LabError(f"OpenAI fine-tuning job {job.id} {job.status}: {reason}{code}")
    runs.finish_run(store, run_id, metrics | {"fine_tuned_model": job.fine_tuned_model})
    row = runs.get_run(store, run_id)
    model_id = runs.register_model(
        store, name=job.fine_tuned_model, kind="openai", base_model=job.model, path=job.fine_tuned_model,
        run_id=run_id, data_path=row["data_path"], config=runs.run_config(row), metrics=metrics,
    )
    say(f"job {job.id} succeeded: {job.fine_tuned_model} (play it: --persuader openai:{job.fine_tuned_model})")
    return {"run_id": run_id, "output": job.fine_tuned_model, "metrics": metrics, "model_id": model_id}
