"""`ptom-lab improve`: rounds of play, data from the model's own games, training and validation
(`engine.pipeline.improve`); `ptom-lab runs show|list` show improve runs through `show_improve` and `list_rows`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.cli.common import add_json_flag, console, err_console, open_store, positive_int, progress
from engine.players.reply_schema import REPLY_FORMATS
from engine.store import Store

EPILOG = """\
Each round: (1) the current adapter plays the training scenarios (--games-per-scenario games each, fresh seeds
every round) against --target; (2) data: turns of won games as the model wrote them (ei) and, at every state it
visited, the planner's reply there (dagger); (3) the adapter trains on it (--steps), continuing from the last
round's LoRA weights, on the rows of every round so far (--no-aggregate: this round's only) and, with
--expert-data, a sample of the planner's rows; (4) it plays the validation scenarios with the same seeds every round (round 0: the start
model). Rerun the same command after a kill to continue; raise --rounds to add rounds. The games are evaluation
runs named improve-ID-rK-play / improve-ID-rK-val: `ptom-lab compare improve-ID-r0-val improve-ID-r3-val`
tests a round against round 0. Default scenario sets are generated with fixed seeds into --out; the training set
holds no held-out scenario, the validation set none of the held-out or training ones.
Example: ptom-lab improve --adapter models/ptom-smollm2 --out models/improve-1 --rounds 3 --steps 20"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from engine.pipeline.improve import DATA_MODES, EI_TURNS, METHODS, TRAIN_SEED, ImproveConfig
    from engine.players.reply_schema import CONCLUDE_RULES, DISCLOSE_RULES

    d = ImproveConfig(out="")
    p = sub.add_parser("improve", parents=[common], help="the model learns from its own games (expert iteration, DAgger)",
                       description="Rounds of play, data from the model's own games, training and validation.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the run's folder: scenario sets, each round's data and adapter; "
                                                "rerunning with the same folder continues the run")
    p.add_argument("--adapter", default=d.adapter, help="start model: a LoRA adapter folder, or 'embedded' "
                                                        "(the untrained SmolLM2; default)")
    p.add_argument("--train-scenarios", default=None, help=f"scenario file to play and learn on (default: "
                                                           f"--n-train generated with seed {TRAIN_SEED})")
    p.add_argument("--val-scenarios", default=None, help="scenario file to validate each round on (default: --n-val "
                                                         "generated, apart from the training and held-out sets)")
    p.add_argument("--n-train", type=positive_int, default=d.n_train, help=f"generated training scenarios ({d.n_train})")
    p.add_argument("--n-val", type=positive_int, default=d.n_val, help=f"generated validation scenarios ({d.n_val})")
    p.add_argument("--rounds", type=positive_int, default=d.rounds, help=f"rounds (default {d.rounds})")
    p.add_argument("--games-per-scenario", type=positive_int, default=d.games_per_scenario,
                   help=f"training games per scenario and round (default {d.games_per_scenario})")
    p.add_argument("--val-games", type=positive_int, default=d.val_games,
                   help=f"validation games per scenario (default {d.val_games})")
    p.add_argument("--target", "--human-agent", dest="target", default=d.target, help="simulated human spec (rational)")
    p.add_argument("--personality", default=d.personality, help="target personality, or 'mix' (default mix)")
    p.add_argument("--data", choices=DATA_MODES, default=d.data, help=f"what to learn from (default {d.data})")
    p.add_argument("--method", choices=METHODS, default=d.method, help="sft (default): on the --data rows; grpo: trl's GRPO on the round's games, "
                                                     "rewarded by the game (P(goal) after each move, the outcome)")
    p.add_argument("--aggregate", action=argparse.BooleanOptionalAction, default=d.aggregate,
                   help="train each round on the rows of every round so far, as DAgger does (default: on)")
    p.add_argument("--expert-data", default=None, help="the planner's chatml rows (`ptom-lab prepare`'s output, e.g. "
                                                       "the start adapter's data/train.jsonl): a fresh sample of them "
                                                       "joins every round's training rows")
    p.add_argument("--expert-share", type=float, default=d.expert_share,
                   help=f"share of a round's training rows drawn from --expert-data (default {d.expert_share})")
    p.add_argument("--conclude", choices=CONCLUDE_RULES, default=d.conclude,
                   help="the games' persuader option: stated offers conclude only right after the target chose the "
                        "goal (default any)")
    p.add_argument("--disclose", choices=DISCLOSE_RULES, default=d.disclose,
                   help="the games' persuader option: stated offers no disclosure that the target's stated "
                        "preferences show to hurt the goal or help a rival (default any)")
    p.add_argument("--ei-turns", choices=EI_TURNS, default=d.ei_turns,
                   help="expert iteration keeps every turn of a won game (all, default), or only those up to the first "
                        "one after the target named the goal as its choice (to_win: what follows is ask_choice filler)")
    p.add_argument("--steps", type=positive_int, default=d.steps, help=f"optimizer steps a round (default {d.steps})")
    p.add_argument("--max-train-tokens", type=positive_int, default=None,
                   help="or end a round's training at this many training tokens (equal-compute comparisons)")
    p.add_argument("--train-config", default=None, help="finetune YAML under the per-round settings (batch size, ...)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: --train-config's, or 2e-4)")
    p.add_argument("--reply-format", choices=REPLY_FORMATS, default=None,
                   help="reply format to train and play (default: the adapter's recorded one, else full)")
    p.add_argument("--max-turns", type=positive_int, default=None, help="override every scenario's turn limit")
    p.add_argument("--max-tokens", type=positive_int, default=None, help="new tokens per reply (local default)")
    p.add_argument("--temperature", type=float, default=d.temperature,
                   help=f"sampling temperature of the training games (default {d.temperature})")
    p.add_argument("--eval-temperature", type=float, default=d.eval_temperature,
                   help=f"temperature of the validation games (default {d.eval_temperature}: greedy)")
    p.add_argument("--dtype", default=None, help="local model dtype, e.g. bfloat16")
    p.add_argument("--concurrency", type=positive_int, default=d.concurrency,
                   help=f"games played at once (batched on one model; default {d.concurrency})")
    p.add_argument("--seed", type=int, default=d.seed, help="run seed (default 0)")
    add_json_flag(p)
    p.set_defaults(func=run_improve)


def config_from_args(args: argparse.Namespace) -> Any:
    from engine.pipeline.improve import ImproveConfig

    return ImproveConfig(
        out=args.out, adapter=args.adapter, train_scenarios=args.train_scenarios, val_scenarios=args.val_scenarios,
        n_train=args.n_train, n_val=args.n_val, rounds=args.rounds, games_per_scenario=args.games_per_scenario,
        val_games=args.val_games, target=args.target, personality=args.personality, data=args.data,
        method=args.method, steps=args.steps, max_train_tokens=args.max_train_tokens, train_config=args.train_config,
        lr=args.lr, reply_format=args.reply_format, max_turns=args.max_turns, max_tokens=args.max_tokens,
        temperature=args.temperature, eval_temperature=args.eval_temperature, dtype=args.dtype,
        concurrency=args.concurrency, seed=args.seed, aggregate=args.aggregate, expert_data=args.expert_data,
        expert_share=args.expert_share, conclude=args.conclude, disclose=args.disclose, ei_turns=args.ei_turns,
    )


def run_improve(args: argparse.Namespace) -> int:
    from engine.pipeline.improve import curve, improve

    store = open_store(args)
    cfg = config_from_args(args).check()
    with progress() as bar:  # the log lines print above the bars (stderr); the curve goes to stdout at the end
        tasks: dict[str, Any] = {}

        def on_progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        try:
            result = improve(store, cfg, say=lambda text: bar.console.print(text, markup=False, highlight=False),
                             progress=on_progress)
        except KeyboardInterrupt:
            err_console.print(f"interrupted: rerun the same command to continue the run in {cfg.out}")
            return 130
    rows = curve(store, result["run"]["id"])
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        print_curve(rows)
    return 0


# ----- `runs show` / `runs list` --------------------------------------------------------------------------------
def print_curve(rows: list[dict[str, Any]]) -> None:
    from engine.pipeline.improve import curve_lines

    console.print("validation success by round", style="bold")
    for line in curve_lines(rows):
        console.print(line, markup=False, highlight=False)


def show_improve(store: Store, key: str, as_json: bool = False) -> bool:
    """`ptom-lab runs show KEY` for an improve run: its settings, every round and the curve. False when KEY names
    no improve run (then it is a training run's)."""
    from engine.pipeline.improve import curve, find_run

    run = find_run(store, key)
    if run is None:
        return False
    rows = curve(store, run["id"])
    if as_json:
        print(json.dumps({"run": run, "rounds": rows}, indent=2, default=str))
        return True
    console.print(f"[bold]{run['id']}[/bold]  improve  {run['status']}  start {run['start_model']}  "
                  f"out {run['out_dir']}", highlight=False)
    console.print("config " + run["config_json"], markup=False, highlight=False, soft_wrap=True)
    if run["error"]:
        console.print(f"error: {run['error']}", style="red", markup=False, highlight=False)
    for r in rows:  # the validation run by name: what `ptom-lab compare` takes
        val = store.find_eval_run(r["eval_run_id"]) if r["eval_run_id"] else None
        trained = (f"games {r['wins'] or 0}/{r['games'] or 0} won  rows ei {r['ei_rows'] or 0} dagger "
                   f"{r['dagger_rows'] or 0}  train {r['train_run_id'] or '-'}  ") if r["round"] else "start model  "
        console.print(f"round {r['round']}: {r['status']}  {trained}adapter {r['adapter'] or '-'}  "
                      f"validation {val['name'] if val else '-'}", markup=False, highlight=False, soft_wrap=True)
    print_curve(rows)
    return True
