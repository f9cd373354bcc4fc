"""Training-run records in the store: start, progress, finished / failed / interrupted, resume, and the model registry.

A run row carries the pid of the process training it. A process killed outright cannot mark its own run, so a
row still `running` whose pid is gone (on this machine) is *shown* as interrupted; `--resume` then continues
from the newest checkpoint in the run's output folder.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import LabError
from engine.files import atomic_write
from engine.players.prompts import PROMPT_VERSION
from engine.players.reply_schema import REPLY_FORMATS
from engine.store import Store, dumps

ENDED = ("finished", "failed", "interrupted")
REPLY_FILE = "ptom_reply.json"  # beside adapter_config.json: the reply format and prompt layout the adapter learnt


def new_run_id(name: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40] or "run"
    return f"{stem}-{uuid.uuid4().hex[:6]}"


def start_run(store: Store, config: dict[str, Any], *, backend: str, method: str, base_model: str,
              data_path: str, output_dir: str, name: str, run_id: str | None = None) -> str:
    """The run's row. Its output folder is claimed under the store's write lock: of two runs started at once into
    one folder (both passed `check_output_free` before either had a row), the second is refused here."""
    run_id = run_id or new_run_id(name)
    with store.transaction():
        other = output_holders(store, output_dir) if output_dir else []
        if other:
            raise LabError(f"output folder {output_dir} holds training run {other[0]['id']} ({other[0]['status']}), "
                           "started at the same time: pick a new folder")
        store.add_training_run({
            "id": run_id, "name": name, "backend": backend, "method": method, "base_model": base_model,
            "data_path": data_path, "output_dir": output_dir, "status": "running", "config_json": dumps(config),
            "pid": os.getpid(),
        })
    return run_id


def update_run(store: Store, run_id: str, **fields: Any) -> None:
    for key in ("config", "metrics"):
        if key in fields:
            fields[f"{key}_json"] = dumps(fields.pop(key))
    store.update_training_run(run_id, **fields)


def resume_run(store: Store, run_id: str, from_step: int | None = None) -> None:
    """The run is being trained again, by this process; steps after `from_step` (its checkpoint) are trained
    again, so their old rows go."""
    if from_step is not None:
        store.drop_training_steps_after(run_id, from_step)
    update_run(store, run_id, status="running", pid=os.getpid(), error=None)


def finish_run(store: Store, run_id: str, metrics: dict[str, Any]) -> None:
    update_run(store, run_id, status="finished", metrics=metrics, error=None)


def fail_run(store: Store, run_id: str, error: str) -> None:
    update_run(store, run_id, status="failed", error=error[:2000])


def interrupt_run(store: Store, run_id: str, checkpoint: str | None) -> None:
    fields: dict[str, Any] = {"status": "interrupted"}
    if checkpoint:
        fields["checkpoint"] = checkpoint
    update_run(store, run_id, **fields)


def add_step(store: Store, run_id: str, step: dict[str, Any]) -> None:
    """One logged step; `step` has the training_steps columns, anything else goes to logs_json."""
    columns = ("step", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_s", "eta_s")
    store.add_training_step(run_id, {**{k: step.get(k) for k in columns}, "logs_json": dumps(step.get("logs", {}))})


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_status(row: dict[str, Any]) -> str:
    """`running` only while the recorded process lives; a killed trainer's run reads as interrupted."""
    if row["status"] == "running" and row.get("backend") != "openai" and not pid_alive(row.get("pid")):
        return "interrupted"
    return row["status"]


def _with_status(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["status"] = effective_status(row)
    return row


def list_runs(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    return [_with_status(r) for r in store.training_runs(limit)]


def get_run(store: Store, run_id: str) -> dict[str, Any]:
    """By id, unique id prefix, or output folder (so `--resume models/NAME` works)."""
    rows = store.find_training_runs(run_id)
    if len(rows) != 1:
        raise LabError(f"no training run '{run_id}' in {store.path}" if not rows else f"'{run_id}' is ambiguous")
    return _with_status(rows[0])


def loss_summary(store: Store, run_id: str) -> dict[str, float]:
    """first_loss and last_loss of the logged training steps, and last_eval_loss when --eval-data was used."""
    logged = store.training_steps(run_id)
    out: dict[str, float] = {}
    losses = [r["loss"] for r in logged if r["loss"] is not None]
    if losses:
        out.update(first_loss=losses[0], last_loss=losses[-1])
    eval_losses = [json.loads(r["logs_json"] or "{}").get("eval_loss") for r in logged if r["loss"] is None]
    eval_losses = [x for x in eval_losses if isinstance(x, (int, float))]
    if eval_losses:
        out["last_eval_loss"] = eval_losses[-1]
    return out


def new_output_dir(root: str = "models") -> str:
    """A folder of its own for a run given none (CLI and TUI), so two runs never share a log or an adapter."""
    return f"{root}/run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


def output_holders(store: Store, output: str | Path) -> list[dict[str, Any]]:
    """The stored runs that train or trained into `output` (compared as resolved paths), newest first."""
    folder = Path(output).resolve()
    return [r for r in list_runs(store, 1_000_000) if r["output_dir"] and Path(r["output_dir"]).resolve() == folder]


def check_output_free(store: Store, output: str | Path, resume: str | None = None) -> None:
    """Refuse a folder that holds another run: a second run there would truncate the first's `train.log` and
    overwrite its adapter and checkpoints. Only the run being resumed may use its own folder, and only while no
    later run has written there. The CLI (`finetune --output`) and the TUI (`jobs.finetune_job`) both ask here."""
    others = [r for r in output_holders(store, output) if r["id"] != resume]
    if others:
        other = others[0]
        raise LabError(f"output folder {output} holds training run {other['id']} ({other['status']}): "
                       "pick a new folder, or leave it blank for a new one")
    folder = Path(output)
    if resume is None and folder.is_dir() and any(folder.iterdir()):
        names = ", ".join(sorted(p.name for p in folder.iterdir())[:3])
        raise LabError(f"output folder {output} holds another run's files ({names}): pick a new folder, "
                       "or leave it blank for a new one")


def resumable(store: Store, row: dict[str, Any]) -> bool:
    """An interrupted run can be continued unless another run has since written into its folder (a resume would
    mix its checkpoints with that run's adapter)."""
    return row["status"] == "interrupted" and not any(
        r["id"] != row["id"] for r in output_holders(store, row["output_dir"] or ""))


def run_config(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["config_json"] or "{}")


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest `checkpoint-N` folder the Trainer saved, or None."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder))


def register_model(store: Store, *, name: str, kind: str, base_model: str, path: str, run_id: str | None,
                   data_path: str, config: dict[str, Any], metrics: dict[str, Any]) -> str:
    """A finished model in `models`: a LoRA folder (`local:models/NAME`) or an `ft:` OpenAI model."""
    model_id = f"{name}-{uuid.uuid4().hex[:6]}"
    store.add_model({
        "id": model_id, "name": name, "kind": kind, "base_model": base_model, "path": path, "run_id": run_id,
        "data_path": data_path, "config_json": dumps(config), "metrics_json": dumps(metrics),
    })
    return model_id


def reply_format_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many training rows teach each reply format, read from the assistant text's section labels.

    A reply opens with BELIEF (self-belief), then REASONING or COUNTERFACTUAL (`full`; data prep leaves out an empty
    section) or MOVES, followed by a MESSAGE line (`compact`) or by nothing (`moves`). Rows that open with neither
    (a raw unparseable reply kept as a KTO negative) are not counted: they teach no format.
    """
    counts = dict.fromkeys(REPLY_FORMATS, 0)
    for row in rows:
        messages = row.get("completion") or row.get("chosen") or []
        text = next((m["content"] for m in reversed(messages) if m.get("role") == "assistant"), "").lstrip()
        if text.startswith("BELIEF:"):
            text = text.partition("\n")[2].lstrip()
        label = text.partition(":")[0]
        if label in ("REASONING", "COUNTERFACTUAL"):
            counts["full"] += 1
        elif label == "MOVES":
            counts["compact" if "\nMESSAGE:" in text else "moves"] += 1
    return counts


def detect_reply_format(counts: dict[str, int], say: Callable[[str], None] | None = None) -> str | None:
    """The reply format `reply_format_counts` found most (None when no row shows one).

    Mixed formats are almost always two `prepare` outputs concatenated by mistake: `say` gets one warning with the
    counts, and the adapter is recorded with the majority format.
    """
    if not any(counts.values()):
        return None
    reply = max(counts, key=lambda k: counts[k])
    if sum(1 for n in counts.values() if n) > 1 and say is not None:
        mix = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
        say(f"warning: the training rows mix reply formats ({mix}); "
            f"the adapter is recorded as {reply}. Train on one `prepare --reply-format` output for a clean model")
    return reply


def write_reply_format(folder: str | Path, reply: str, counts: dict[str, int], prompt: int = PROMPT_VERSION) -> None:
    """Record the adapter's reply format (and prompt layout) next to its adapter_config.json, so play uses the
    format without `?reply=` and warns about a layout the model never saw."""
    with atomic_write(Path(folder) / REPLY_FILE) as fh:
        json.dump({"reply_format": reply, "prompt_layout": prompt, "rows": counts}, fh, indent=2)
        fh.write("\n")


def _reply_record(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / REPLY_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabError(f"{path}: not a readable reply-format record ({exc}); delete it to play without one") from None
    if not isinstance(record, dict):
        raise LabError(f"{path}: not a reply-format record (a mapping); delete it to play without one")
    return record


def read_reply_format(folder: str | Path) -> str | None:
    """The reply format recorded in an adapter folder, or None for a model without a record (a base model)."""
    record = _reply_record(folder)
    if record is None:
        return None
    reply = record.get("reply_format")
    if reply not in REPLY_FORMATS:
        raise LabError(f"{Path(folder) / REPLY_FILE}: unknown reply format {reply!r} (known: {', '.join(REPLY_FORMATS)})")
    return reply


def read_prompt_layout(folder: str | Path) -> int | None:
    """The prompt layout an adapter was trained on: None without a record, 1 for a record older than the field."""
    record = _reply_record(folder)
    return None if record is None else int(record.get("prompt_layout", 1))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def format_step(row: dict[str, Any], total_steps: int | None = None) -> str:
    """One logged step as the line `finetune` prints while training and `runs follow` prints after."""

    def num(key: str, fmt: str) -> str:
        value = row.get(key)
        return "-" if value is None else format(value, fmt)

    of = f"/{total_steps}" if total_steps and total_steps > 0 else ""
    logs = row.get("logs")
    if logs is None and row.get("logs_json"):
        logs = json.loads(row["logs_json"])
    if isinstance((logs or {}).get("eval_loss"), (int, float)):  # an evaluation on --eval-data
        return f"step {row.get('step')}{of}  eval loss {logs['eval_loss']:.4f}"
    return (f"step {row.get('step')}{of}  loss {num('loss', '.4f')}  lr {num('learning_rate', '.2e')}  "
            f"grad {num('grad_norm', '.3f')}  {num('tokens_per_s', '.0f')} tok/s  epoch {num('epoch', '.2f')}  "
            f"eta {duration(row.get('eta_s'))}")
