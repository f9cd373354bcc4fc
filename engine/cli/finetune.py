"""`ptom-lab finetune ...` (LoRA/QLoRA SFT, KTO, DPO, or the OpenAI API) and `ptom-lab runs list|show|follow`.

Flags default to None so that only the flags actually given override the `--config` YAML file (and, with
`--resume`, the resumed run's stored config). Training itself lives in `engine.pipeline.training`, imported on use.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from rich.table import Table

from engine.cli.common import add_json_flag, console, open_store, print_rows
from engine.cli.improve import show_improve
from engine.pipeline.improve import run_rows as improve_rows
from engine.pipeline.training.config import METHODS, PRECISIONS

if TYPE_CHECKING:
    from engine.store import Store

# flag -> (type, help); each becomes a TrainConfig override when given
OPTIONS: dict[str, tuple[Any, str]] = {
    "--model": (str, "base model: a Hugging Face folder or name (default: the embedded SmolLM2); "
                     "with --backend openai an OpenAI model (default gpt-4o-mini-2024-07-18)"),
    "--data": (str, "training file (chatml/sharegpt/openai for sft, kto or dpo rows)"),
    "--output": (str, "adapter folder, e.g. models/NAME (checkpoints go inside; default: a new models/run-DATE-TIME-ID); "
                      "a folder that holds another run is refused"),
    "--name": (str, "run and model name (default: the output folder's name)"),
    "--init-adapter": (str, "continue training this LoRA adapter folder (its weights, rank and layers) instead of "
                            "fresh LoRA weights, e.g. more plain SFT beside `ptom-lab improve`'s rounds"),
    "--eval-data": (str, "held-out file in the same format: eval loss every --save-steps"),
    "--validation-data": (str, "OpenAI backend: a validation file"),
    "--epochs": (float, "passes over the data (local default 1; OpenAI default auto)"),
    "--max-steps": (int, "stop after this many optimizer steps (overrides --epochs)"),
    "--max-train-tokens": (int, "stop once the trainer has seen this many training tokens (non-padding): two runs "
                                "on data of different lengths then train on equal compute"),
    "--lr": (float, "learning rate (default 2e-4)"),
    "--lora-r": (int, "LoRA rank (default 16)"),
    "--lora-alpha": (int, "LoRA alpha (default 32)"),
    "--lora-dropout": (float, "LoRA dropout (default 0.05)"),
    "--lora-layers": (int, "LoRA on the last N decoder layers only (default: all): backward stops there, "
                           "faster and smaller on a CPU"),
    "--batch-size": (int, "examples per device per forward pass (default 1: no padding, and the activations of one "
                          "example only)"),
    "--grad-accum": (int, "forward passes per optimizer step (default 4: a step of 4 examples)"),
    "--max-seq-len": (int, "tokens per example, longer ones are truncated (default 1024)"),
    "--save-steps": (int, "checkpoint every N steps (default 50); --resume continues from the last"),
    "--logging-steps": (int, "log a step to the store every N steps (default 1)"),
    "--seed": (int, "random seed (default 42)"),
    "--cpu-threads": (int, "torch threads on the CPU (default: all cores; 1 is much faster on a busy machine)"),
    "--beta": (float, "KTO/DPO: strength of the pull to the base model (default 0.1)"),
    "--desirable-weight": (float, "KTO: weight of the desirable (label true) loss (default 1; trl suggests one "
                                  "when the labels are unbalanced)"),
    "--undesirable-weight": (float, "KTO: weight of the undesirable (label false) loss (default 1)"),
    "--suffix": (str, "OpenAI backend: suffix of the ft: model name"),
    "--poll": (float, "OpenAI backend: seconds between polls of the job (default 10)"),
}


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("finetune", parents=[common], help="train a LoRA adapter (SFT, KTO, DPO, GRPO) or an OpenAI fine-tune",
                       description="Train a persuader. Settings come from flags, a --config YAML file, or both "
                                   "(flags win). Several GPUs: accelerate launch -m engine finetune ...")
    p.add_argument("--config", help="YAML file of settings (keys are the flag names, e.g. lora_r: 16)")
    p.add_argument("--backend", choices=["local", "openai"], default=None, help="local (default) or openai")
    p.add_argument("--method", choices=METHODS, default=None,
                   help="sft (default), kto, dpo, or grpo (online RL: --data is a prompt file of played games, e.g. an "
                        "improve round's grpo_prompts.jsonl)")
    for flag, (kind, text) in OPTIONS.items():
        p.add_argument(flag, type=kind, default=None, help=text)
    p.add_argument("--packing", action=argparse.BooleanOptionalAction, default=None,
                   help="pack several short examples into each sequence (faster on short examples)")
    p.add_argument("--qlora", action=argparse.BooleanOptionalAction, default=None,
                   help="load the base in 4-bit NF4 (bitsandbytes, CUDA GPU only)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="number format of the base weights and matmuls (LoRA's own weights stay float32): auto "
                        "(default: bf16 on a GPU that has it, else fp16; on a CPU, bf16 where it multiplies bf16 "
                        "natively, else float32), float32, or bf16")
    p.add_argument("--report-to", choices=["none", "wandb", "tensorboard"], default=None,
                   help="also log to Weights & Biases or TensorBoard (when installed)")
    p.add_argument("--resume", metavar="RUN_OR_OUTPUT", help="continue an interrupted run from its last checkpoint")
    p.set_defaults(func=finetune)

    r = sub.add_parser("runs", parents=[common], help="training runs: list, show, follow live")
    s = r.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = s.add_parser("list", parents=[common], help="newest runs first")
    ls.add_argument("--limit", type=int, default=20)
    add_json_flag(ls)
    ls.set_defaults(func=list_runs)
    sh = s.add_parser("show", parents=[common], help="a run's config, metrics and logged steps (an improve run: "
                                                     "its rounds and success-by-round curve)")
    sh.add_argument("run", help="run id (a unique prefix will do) or output folder")
    sh.add_argument("--steps", type=int, default=20, help="how many of the last steps to print (0: all)")
    sh.add_argument("--json", action="store_true", help="an improve run: its row and rounds as JSON")
    sh.set_defaults(func=show_run)
    fo = s.add_parser("follow", parents=[common], help="print a run's steps live until it ends (Ctrl-C stops)")
    fo.add_argument("run")
    fo.add_argument("--interval", type=float, default=1.0, help="seconds between polls of the store")
    fo.set_defaults(func=follow_run)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = [f.lstrip("-").replace("-", "_") for f in OPTIONS] + ["backend", "method", "packing", "qlora", "precision", "report_to"]
    out = {n: getattr(args, n) for n in names}
    out["poll_s"] = out.pop("poll")
    return out


def finetune(args: argparse.Namespace) -> int:
    from engine.pipeline.training import runs
    from engine.pipeline.training.config import load_config

    store = open_store(args)
    resume_id = None
    # a local run gets a folder of its own unless one is given (the OpenAI backend writes no folder)
    base: dict[str, Any] = {} if args.backend == "openai" else {"output": runs.new_output_dir()}
    if args.resume:
        row = runs.get_run(store, args.resume)
        base, resume_id = runs.run_config(row), row["id"]
    cfg = load_config(args.config, overrides(args), base)
    if cfg.backend == "openai":
        from engine.pipeline.training import openai_ft

        result = openai_ft.train(cfg, store, resume=args.resume, say=lambda text: console.print(text, markup=False))
    else:
        from engine.pipeline.training import grpo, loop, preference, sft

        trainer = {"sft": sft, "grpo": grpo}.get(cfg.method, preference)  # grpo: a prompt file of games
        runs.check_output_free(store, cfg.output, resume_id)  # never a second run's log over the first's
        loop.check_environment(cfg)  # a missing GPU or package is the only line printed
        console.print(f"training {cfg.method} LoRA on {cfg.model} with {cfg.data} -> {cfg.output}")
        try:
            result = trainer.train(cfg, store, resume=args.resume,
                                   echo=lambda row, total: console.print(runs.format_step(row, total), markup=False, soft_wrap=True),
                                   say=lambda text: console.print(text, markup=False, highlight=False))
        except KeyboardInterrupt:
            row = runs.get_run(store, args.resume or cfg.output)
            console.print(f"interrupted: run {row['id']} kept checkpoint {row['checkpoint'] or '(none yet)'}; "
                          f"continue it with: ptom-lab finetune --resume {row['id']}", markup=False)
            return 130
        if result.get("model_id"):
            m = result["metrics"]
            console.print(f"finished run {result['run_id']}: {m.get('global_step')} steps, loss "
                          f"{m.get('first_loss', float('nan')):.4f} -> {m.get('last_loss', float('nan')):.4f}"
                          + (f", eval loss {m['last_eval_loss']:.4f}" if "last_eval_loss" in m else "")
                          + f" in {m.get('train_runtime', 0):.0f}s", markup=False)
            console.print(f"adapter saved to {cfg.output}; play it: ptom-lab play --persuader local:{cfg.output}")
    return 0


def _short(text: str | None, width: int = 28) -> str:
    text = text or ""
    return text if len(text) <= width else "..." + text[-(width - 3):]


RUN_COLUMNS = ("id", "status", "backend", "method", "step", "total_steps", "loss", "base_model", "data", "output",
               "created_at")


def list_runs(args: argparse.Namespace) -> int:
    from engine.pipeline.training import runs

    store = open_store(args)
    rows = []
    for r in runs.list_runs(store, args.limit):
        step, last_loss = store.latest_training_step(r["id"])
        rows.append({"id": r["id"], "status": r["status"], "backend": r["backend"], "method": r["method"], "step": step,
                     "total_steps": r["total_steps"], "loss": last_loss, "base_model": r["base_model"],
                     "data": r["data_path"], "output": r["output_dir"], "created_at": r["created_at"]})
    rows = sorted(rows + improve_rows(store, args.limit), key=lambda r: r["created_at"], reverse=True)[:args.limit]
    print_rows(args, RUN_COLUMNS, rows, _runs_table, [f"{len(rows)} run(s) in {store.path}"])
    return 0


def _runs_table(rows: list[dict[str, Any]]) -> Table:
    # The columns people copy or scan (id, status, steps, loss) are never cut on a narrow terminal.
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=max((len(r["id"]) for r in rows), default=2))
    table.add_column("status", no_wrap=True, min_width=11)
    table.add_column("method", no_wrap=True, min_width=10)
    table.add_column("steps", no_wrap=True, min_width=7)
    table.add_column("loss", no_wrap=True, min_width=6)
    for name in ("base model", "data", "when (UTC)"):
        table.add_column(name, no_wrap=True, overflow="ellipsis")
    for r in rows:
        loss = f"{r['loss']:.4f}" if r["loss"] is not None else "-"
        table.add_row(r["id"], r["status"], f"{r['backend']}/{r['method']}", f"{r['step']}/{r['total_steps'] or '?'}",
                      loss, _short(r["base_model"], 20), _short(r["data"], 20), r["created_at"][5:16].replace("T", " "))
    return table


def _print_header(row: dict[str, Any]) -> None:
    console.print(f"[bold]{row['id']}[/bold]  {row['status']}  {row['backend']}/{row['method']}  "
                  f"base {row['base_model']}  data {row['data_path']}", highlight=False)
    if row["output_dir"]:
        console.print(f"output {row['output_dir']}  checkpoint {row['checkpoint'] or '-'}", highlight=False)
    elif row["checkpoint"]:
        console.print(f"OpenAI job {row['checkpoint']}", highlight=False)


def _print_end(store: Store, row: dict[str, Any]) -> None:
    """Metrics, error, and for an interrupted run how to resume it, unless another run has since used its folder."""
    from engine.pipeline.training import runs

    if row["metrics_json"]:
        console.print("metrics " + json.dumps(json.loads(row["metrics_json"])), markup=False, highlight=False, soft_wrap=True)
    if row["error"]:
        console.print(f"[red]error: {row['error']}[/red]", highlight=False)
    if runs.resumable(store, row):
        console.print(f"resume it: ptom-lab finetune --resume {row['id']}", markup=False)
    elif row["status"] == "interrupted":
        console.print(f"not resumable: another run has written into its folder {row['output_dir']}", markup=False)


def show_run(args: argparse.Namespace) -> int:
    from engine.pipeline.training import runs

    store = open_store(args)
    if show_improve(store, args.run, args.json):
        return 0
    row = runs.get_run(store, args.run)
    _print_header(row)
    console.print("config " + json.dumps(runs.run_config(row)), markup=False, highlight=False, soft_wrap=True)
    steps = store.training_steps(row["id"])
    if args.steps and len(steps) > args.steps:
        console.print(f"... {len(steps) - args.steps} earlier step(s)")
        steps = steps[-args.steps:]
    for s in steps:
        console.print(runs.format_step(s, row["total_steps"]), markup=False, soft_wrap=True)
    _print_end(store, row)
    return 0


def follow_run(args: argparse.Namespace) -> int:
    """Poll the store: another terminal (or the TUI) sees exactly what the trainer wrote."""
    from engine.pipeline.training import runs

    store = open_store(args)
    row = runs.get_run(store, args.run)
    _print_header(row)
    last_id = 0
    try:
        while True:
            for s in store.training_steps(row["id"], last_id):
                console.print(runs.format_step(s, row["total_steps"]), markup=False, soft_wrap=True)
                last_id = s["id"]
            if row["status"] != "running":
                break
            time.sleep(args.interval)
            row = runs.get_run(store, row["id"])
    except KeyboardInterrupt:
        console.print("stopped following; the run goes on")
        return 0
    console.print(f"run {row['status']}")
    _print_end(store, row)
    return 0 if row["status"] == "finished" else 1
