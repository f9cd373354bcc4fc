"""`ptom-lab evaluate` (one agent over held-out episodes) and `ptom-lab compare` (a leaderboard of several)."""

from __future__ import annotations

import argparse
import re
import uuid

from engine.cli.common import console, open_store, progress
from engine.errors import LabError
from engine.evaluation import EvalConfig, RunResult, evaluate
from engine.game import Episode
from engine.leaderboard import build, entries_for_runs, num, pct, table, write
from engine.store import Store


def _episode_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--human-agent", "--target", dest="human_agent", default="rational", help="simulated human spec")
    p.add_argument("--scenarios", default="scenarios/heldout.jsonl", help="scenario file or folder")
    p.add_argument("--num-eval", type=int, default=100, help="how many scenarios (the first N of the file)")
    p.add_argument("--personality", default="cooperative", help="target personality, or 'mix' (seeded per episode)")
    p.add_argument("--condition", choices=["hidden", "revealed", "both"], default="hidden")
    p.add_argument("--seeds", type=int, default=1, help="episodes per scenario and condition (seeds 0..K-1)")
    p.add_argument("--max-turns", type=int, default=None, help="override every scenario's turn limit")
    p.add_argument("--concurrency", type=int, default=1, help="episodes played at once (API and local models)")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("evaluate", parents=[common], help="evaluate one persuader over held-out episodes")
    p.add_argument("--model", required=True, help="persuader spec: planner, greedy, local:PATH, openai:MODEL ...")
    p.add_argument("--name", default=None, help="run name; re-running a name resumes it")
    _episode_flags(p)
    p.set_defaults(func=run_evaluate)

    c = sub.add_parser("compare", parents=[common], help="leaderboard of stored runs, or of --models run now")
    c.add_argument("runs", nargs="*", help="stored evaluation run names")
    c.add_argument("--models", default=None, help="comma-separated persuader specs to evaluate on the same episodes")
    c.add_argument("--name", default=None, help="prefix of the runs --models creates (re-run to resume)")
    c.add_argument("--out", default="leaderboard", help="folder for leaderboard.md, .json and .png")
    _episode_flags(c)
    c.set_defaults(func=run_compare)


def _config(args: argparse.Namespace, model: str) -> EvalConfig:
    return EvalConfig(
        model=model, human_agent=args.human_agent, scenarios=args.scenarios, num_eval=args.num_eval,
        personality=args.personality, condition=args.condition, seeds=args.seeds, max_turns=args.max_turns,
    )


def _play(store: Store, config: EvalConfig, name: str | None, concurrency: int) -> RunResult:
    name = name or f"{_slug(config.model)}-{uuid.uuid4().hex[:6]}"
    with progress() as bar:
        task = bar.add_task(f"{config.model} vs {config.human_agent}", total=None)

        def on_start(total: int, done: int) -> None:
            bar.update(task, total=total, completed=done)

        def on_episode(episode: Episode) -> None:
            bar.advance(task)
            if episode.status == "errored":
                bar.console.print(f"[yellow]episode {episode.id} errored: {episode.error}[/yellow]")

        try:
            return evaluate(store, config, name=name, concurrency=concurrency, on_start=on_start, on_episode=on_episode)
        except KeyboardInterrupt:
            raise LabError(f"interrupted: finished episodes are saved; re-run with --name {name} to resume") from None


def _pct(x: float | None) -> str:
    return pct(x, 1)


def _success(s: dict) -> str:
    return f"{s['successes']}/{s['n']} = {_pct(s['rate'])}  (95% CI {_pct(s['ci95'][0])}–{_pct(s['ci95'][1])})"


def _summary_lines(res: RunResult) -> list[str]:
    r = res.results
    t, cf, pa = r["turns_to_success"], r["counterfactual"], r["preference_alignment"]
    lines = [
        f"run {res.run['name']} ({res.run['id']}): {res.played} played, {res.skipped} resumed, {res.wall_s:.1f} s",
        f"success        {_success(r['success'])}",
    ]
    for condition, sub in (r.get("by_condition") or {}).items():
        lines.append(f"  {condition:<12} {_success(sub['success'])}")
    moves = r.get("moves") or {}
    return lines + [
        f"turns to win   mean {num(t['mean'])}, median {num(t['median'], 1)}",
        f"pref. align.   final {_pct(pa['final'])}  (belief on {_pct(pa['coverage'])} of turns)",
        "  by turn      " + (" ".join(f"{i}:{_pct(v)}" for i, v in pa["by_turn"].items()) or "–"),
        f"counterfact.   choice accuracy {_pct(cf['choice_accuracy'])}, Brier {num(cf['brier'], 3)}",
        f"moves          on {_pct(moves.get('rate'))} of turns  unparseable replies {r['unparseable']}  lies {r['violations']}",
        f"errored {r['errored']} (not in the rates)  tokens {r['usage']['input_tokens']}+{r['usage']['output_tokens']}  "
        f"cost ${r['usage']['cost_usd']:.4f}",
    ]


def run_evaluate(args: argparse.Namespace) -> int:
    store = open_store(args)
    res = _play(store, _config(args, args.model), args.name, args.concurrency)
    for line in _summary_lines(res):
        console.print(line, highlight=False)
    return 0


def _run_name(prefix: str | None, model: str, config: EvalConfig) -> str:
    """Deterministic, so `compare --models` re-run with the same flags resumes its runs."""
    base = prefix or f"cmp-n{config.num_eval}-{config.condition}-{config.personality}-s{config.seeds}"
    return f"{base}-{_slug(model)}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)


def run_compare(args: argparse.Namespace) -> int:
    store = open_store(args)
    names = list(args.runs)
    if args.models:
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            config = _config(args, model)
            name = _run_name(args.name, model, config)
            _play(store, config, name, args.concurrency)
            names.append(name)
    if not names:
        raise LabError("compare: name stored runs (ptom-lab compare RUN_A RUN_B) or pass --models a,b,...")
    board = build(entries_for_runs(store, names))
    console.print(table(board))
    ranked = [e["label"] for e in board["entries"]]
    for p in board["pairwise"]:  # the terminal shows neighbours in the ranking; the files have every pair
        if ranked.index(p["b"]) != ranked.index(p["a"]) + 1:
            continue
        console.print(
            f"{p['a']} vs {p['b']}: {p['pairs']} paired episodes, only A won {p['only_a']}, "
            f"only B won {p['only_b']}, McNemar exact p = {p['p_value']:.3g}", highlight=False,
        )
    paths = write(board, args.out)
    console.print(f"[dim]wrote {', '.join(str(p) for p in paths.values())}[/dim]")
    return 0
