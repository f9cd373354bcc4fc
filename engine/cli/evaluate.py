"""`ptom-lab evaluate` (one agent over held-out episodes) and `ptom-lab compare` (a leaderboard of several)."""

from __future__ import annotations

import argparse
import re
import uuid

from engine.cli.common import add_json_flag, console, open_store, positive_int, print_rows, progress
from engine.errors import LabError
from engine.game.interfaces import RULE_SETS
from engine.game.mindgames import load_published
from engine.game.record import Episode
from engine.pipeline.evaluation import EvalConfig, RunResult, check_run, evaluate, load_scenarios
from engine.pipeline.leaderboard import ROW_COLUMNS, build, entries_for_runs, num, pct, rows, table, write
from engine.players.registry import canonical, spec_list
from engine.store import Store

DEFAULT_NUM_EVAL = 100  # the held-out set's size


def _episode_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--human-agent", "--target", dest="human_agent", default="rational", help="simulated human spec")
    p.add_argument("--scenarios", default="scenarios/heldout.jsonl", help="scenario file or folder")
    p.add_argument("--num-eval", type=positive_int, default=None,
                   help="how many scenarios, the first N of the file (default: 100, or all of a smaller file)")
    p.add_argument("--personality", default="cooperative", help="target personality, or 'mix' (seeded per episode)")
    p.add_argument("--condition", choices=["hidden", "revealed", "both"], default="hidden")
    p.add_argument("--seeds", type=positive_int, default=1, help="episodes per scenario and condition (repeats 0..K-1)")
    p.add_argument("--seed", type=int, default=0, help="run seed: another value is an independent replication")
    p.add_argument("--max-turns", type=positive_int, default=None, help="override every scenario's turn limit")
    p.add_argument("--rules", choices=RULE_SETS, default="lab",
                   help="lab, or mindgames: MindGames' protocol (every message played, a lie rejects its message)")
    p.add_argument("--concurrency", type=positive_int, default=1, help="episodes played at once (API and local models)")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("evaluate", parents=[common], help="evaluate one persuader over held-out episodes")
    p.add_argument("--model", required=True, help="persuader spec: planner, greedy, local:PATH, openai:MODEL ...")
    p.add_argument("--name", default=None, help="run name; re-running a name resumes it")
    _episode_flags(p)
    p.set_defaults(func=run_evaluate)

    c = sub.add_parser("compare", parents=[common], help="leaderboard of stored runs, or of --models run now")
    c.add_argument("runs", nargs="*", help="stored evaluation run names")
    c.add_argument("--models", nargs="+", action="extend", default=[], metavar="SPEC",
                   help="persuader specs to evaluate on the same episodes, each its own value (--models planner "
                        "planner?asks=1&per=2 greedy); name stored runs before --models")
    c.add_argument("--name", default=None, help="prefix of the runs --models creates (re-run to resume)")
    c.add_argument("--out", default="leaderboard", help="folder for leaderboard.md, .json and .png")
    c.add_argument("--published", default=None, metavar="NAME",
                   help="set published figures beside the runs: mindgames (its success rates, for runs on "
                        "scenarios/mindgames.jsonl with --rules mindgames)")
    add_json_flag(c)
    _episode_flags(c)
    c.set_defaults(func=run_compare)


def _config(args: argparse.Namespace, model: str) -> EvalConfig:
    """The run's settings, specs in canonical form (the old `planner:noise=0.3` is stored as `planner?noise=0.3`)."""
    num_eval = args.num_eval or min(DEFAULT_NUM_EVAL, len(load_scenarios(args.scenarios)))
    return EvalConfig(
        model=str(canonical(model)), human_agent=str(canonical(args.human_agent, "human agent")), scenarios=args.scenarios, num_eval=num_eval,
        personality=args.personality, condition=args.condition, seeds=args.seeds, max_turns=args.max_turns,
        seed=args.seed, rules=args.rules,
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

        def on_note(text: str) -> None:
            bar.console.print(text, style="yellow", markup=False, highlight=False, soft_wrap=True)

        try:
            return evaluate(store, config, name=name, concurrency=concurrency, on_start=on_start,
                            on_episode=on_episode, on_note=on_note)
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
    moves, told = r.get("moves") or {}, r.get("disclosures") or {}  # a run stored before the count has none
    return lines + [
        f"turns to win   mean {num(t['mean'])}, median {num(t['median'], 1)}",
        f"pref. align.   final {_pct(pa['final'])}  (belief on {_pct(pa['coverage'])} of turns)",
        "  by turn      " + (" ".join(f"{i}:{_pct(v)}" for i, v in pa["by_turn"].items()) or "–"),
        f"counterfact.   choice accuracy {_pct(cf['choice_accuracy'])}, Brier {num(cf['brier'], 3)}",
        f"moves          on {_pct(moves.get('rate'))} of turns  unparseable replies {r['unparseable']}  lies {r['violations']}",
        f"disclosures    {told.get('made', '–')}, of which {told.get('ruled_out', '–')} the target's stated "
        "preferences had ruled out",
        f"errored {r['errored']} (not in the rates)  tokens {r['usage']['input_tokens']}+{r['usage']['output_tokens']}  "
        f"cost ${r['usage']['cost_usd']:.4f}",
    ]


def run_evaluate(args: argparse.Namespace) -> int:
    store = open_store(args)
    res = _play(store, _config(args, args.model), args.name, args.concurrency)
    for line in _summary_lines(res):
        console.print(line, highlight=False)
    _check_scored(res)
    return 0


def _check_scored(res: RunResult) -> None:
    """A run with no scored episode is a failure to report, not `success 0/0`."""
    if res.run["status"] == "errored":
        raise LabError(
            f"every episode of run {res.run['name']} errored (first: {res.results['first_error']}); the run is marked "
            f"errored. Fix the cause and re-run with --name {res.run['name']} to replay them"
        )


def _run_name(prefix: str | None, model: str, config: EvalConfig) -> str:
    """Deterministic, so `compare --models` re-run with the same flags resumes its runs."""
    base = prefix or f"cmp-n{config.num_eval}-{config.condition}-{config.personality}-s{config.seeds}"
    if config.seed and not prefix:  # a replication is a run of its own, not a resume of seed 0's
        base += f"-seed{config.seed}"
    if config.rules != "lab" and not prefix:
        base += f"-{config.rules}"
    return f"{base}-{_slug(model)}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)


def run_compare(args: argparse.Namespace) -> int:
    store = open_store(args)
    names = list(args.runs)
    published = load_published(args.published) if args.published else None  # a bad name fails before any game
    configs = [_config(args, str(spec)) for spec in spec_list(args.models)]  # the old comma form still reads
    for config in configs:  # every model's specs and grammars before the first game of the first run
        check_run(config)
    for config in configs:
        name = _run_name(args.name, config.model, config)
        _play(store, config, name, args.concurrency)
        names.append(name)
    if not names:
        raise LabError("compare: name stored runs (ptom-lab compare RUN_A RUN_B) or pass --models A B ...")
    board = build(entries_for_runs(store, names), published)
    ranked = [e["label"] for e in board["entries"]]
    notes = [  # the terminal shows neighbours in the ranking; the files have every pair
        f"{p['a']} vs {p['b']}: {p['pairs']} paired episodes, only A won {p['only_a']}, "
        f"only B won {p['only_b']}, McNemar exact p = {p['p_value']:.3g}"
        for p in board["pairwise"] if ranked.index(p["b"]) == ranked.index(p["a"]) + 1
    ]
    paths = write(board, args.out)
    notes.append(f"[dim]wrote {', '.join(str(p) for p in paths.values())}[/dim]")
    print_rows(args, ROW_COLUMNS, rows(board), lambda _rows: table(board), notes)
    return 0
