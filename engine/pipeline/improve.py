"""`ptom-lab improve`: the model learns from its own games (expert iteration and DAgger), round after round.

A model trained only to imitate the planner drifts into states the planner never visited, and nothing corrects it
there. Each round closes the loop with the game's exact reward and its cheap expert:

1. *play*: the current adapter plays the training scenarios (`games_per_scenario` games each, seeds fresh every
   round) against the simulated human, as an evaluation run named `improve-<id>-r<k>-play`;
2. *data*: from those games, the turns of the won games as the model wrote them (`ei`, expert iteration; with
   `ei_turns` `to_win` only those up to the target naming the goal) and, at
   every state the model visited, the planner's reply as the label (`dagger`): the planner catches up on the
   visited history and acts, and the row's prompt is exactly what the model saw (`dataprep.turn_examples`), the
   completion the planner's move in the adapter's reply format (`prompts.assistant_text`);
3. *train*: the adapter is trained on that data, continuing from the last round's LoRA weights (`init_adapter`).
   As DAgger proper, a round trains on the rows of every round so far (`aggregate`), and with `expert_data` (the
   planner's rows that `prepare` wrote for the start adapter) a fresh sample of them makes up `expert_share` of
   the round's training file, so the model keeps what it first learned while it is corrected where it drifts;
4. *evaluate*: the new adapter plays the validation scenarios as `improve-<id>-r<k>-val`, with the same seeds
   every round (round 0 is the start model), so `ptom-lab compare` can pair any round with any other.

Scenario sets: by default both are generated with fixed seeds; the training set never holds a held-out scenario
(`generator.generate` excludes them) and the validation set excludes the held-out set and every training
signature, so validation is kept apart from both. Given files are checked the same way (ids and signatures).

Everything is in the store (`improve_runs`, `improve_rounds`) and in the output folder; rerunning the same command
continues from the last finished step: the evaluation runs resume by name, the data file is rebuilt from the
stored games, and an interrupted training run resumes from its checkpoint (or starts again in a new folder).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import LabError
from engine.files import atomic_write
from engine.game.interfaces import Exchange, PersuaderView, persuader_side, revealed_state
from engine.store import Store, dumps

if TYPE_CHECKING:  # data prep is imported when a round builds its data, not by every `ptom-lab` start
    from engine.game.record import Episode
    from engine.pipeline.dataprep import Example
    from engine.pipeline.evaluation import EvalConfig

DATA_MODES = ("ei+dagger", "ei", "dagger")  # the first is the default
METHODS = ("sft", "grpo")  # grpo: trl's GRPOTrainer on the round's games, rewarded by the game (training/grpo.py)
TRAIN_SEED = 1601  # the default scenario sets: fixed, so a rerun (and another machine) plays the same ones
VAL_SEED = 1602
EI_TURNS = ("all", "to_win")  # the turns of a won game expert iteration keeps (`winning_turns`); first: the default
LEGACY = {"aggregate": False, "expert_data": None, "expert_share": 0.5, "conclude": "any", "disclose": "any",
          "ei_turns": "all"}  # how runs stored before these settings ran
Say = Callable[[str], None]
Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(frozen=True)
class ImproveConfig:
    """Everything that defines an improve run; stored as `improve_runs.config_json` and checked on a rerun."""

    out: str
    adapter: str = "embedded"  # the start model: a LoRA adapter folder, or `embedded` (the untrained SmolLM2)
    train_scenarios: str | None = None  # a scenario file; None: `n_train` generated with TRAIN_SEED
    val_scenarios: str | None = None  # a scenario file; None: `n_val` generated with VAL_SEED
    n_train: int = 20
    n_val: int = 20
    rounds: int = 3
    games_per_scenario: int = 2
    val_games: int = 1  # validation episodes per scenario (the same seeds every round)
    target: str = "rational"
    personality: str = "mix"
    data: str = "ei+dagger"
    method: str = "sft"
    steps: int = 20  # optimizer steps per round
    max_train_tokens: int | None = None  # or stop a round's training at this many tokens
    train_config: str | None = None  # a finetune YAML file under the per-round settings
    lr: float | None = None
    reply_format: str | None = None  # None: the adapter's recorded format, else `full`
    max_turns: int | None = None
    max_tokens: int | None = None
    temperature: float = 0.7  # the training games: sampled, so the games explore
    eval_temperature: float = 0.0  # validation: greedy, as the tutorial's comparison
    dtype: str | None = None
    concurrency: int = 4
    seed: int = 0
    aggregate: bool = True  # train on the rows of every round so far (DAgger's aggregated data), not this round's only
    expert_data: str | None = None  # chatml rows of the planner (prepare's output), mixed into every round
    expert_share: float = 0.5  # the expert rows' share of a round's training file, when expert_data is given
    conclude: str = "any"  # the persuader option of every game the rounds play (`stated`: no conclude while losing)
    disclose: str = "any"  # the same for disclosures (`stated`: none the target's stated preferences rule out)
    ei_turns: str = "all"  # expert iteration: every turn of a won game, or (`to_win`) up to the target naming the goal

    def check(self) -> ImproveConfig:
        """A bad setting is one line naming it, before any game is played."""
        if not self.out:
            raise LabError("--out: give the run's folder, e.g. models/improve-1")
        if self.data not in DATA_MODES:
            raise LabError(f"--data: unknown '{self.data}' (known: {', '.join(DATA_MODES)})")
        if self.method not in METHODS:
            raise LabError(f"--method: unknown '{self.method}' (known: {', '.join(METHODS)})")
        for name in ("n_train", "n_val", "rounds", "games_per_scenario", "val_games", "steps", "concurrency"):
            if getattr(self, name) < 1:
                raise LabError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        from engine.players.reply_schema import rule_options

        rule_options(self.conclude, self.disclose)  # the persuader options every game of the rounds plays with
        if self.ei_turns not in EI_TURNS:
            raise LabError(f"--ei-turns: unknown '{self.ei_turns}' (known: {', '.join(EI_TURNS)})")
        if not 0 < self.expert_share < 1:
            raise LabError(f"--expert-share must be between 0 and 1 (exclusive), got {self.expert_share}")
        if self.expert_data and not Path(self.expert_data).is_file():
            raise LabError(f"--expert-data: no file '{self.expert_data}' (the chatml rows `ptom-lab prepare` wrote)")
        if self.adapter != "embedded" and not (Path(self.adapter) / "adapter_config.json").is_file():
            raise LabError(f"--adapter: no LoRA adapter at '{self.adapter}' (expected adapter_config.json), "
                           "or give 'embedded'")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----- models and scenarios ---------------------------------------------------------------------------------------
def reply_format(cfg: ImproveConfig, say: Say | None = None) -> str:
    """The reply format the rounds train and play: the start adapter's record, else `--reply-format`, else `full`."""
    from engine.pipeline.training.runs import read_reply_format
    from engine.players.reply_schema import reply_sections

    recorded = read_reply_format(cfg.adapter) if cfg.adapter != "embedded" else None
    if cfg.reply_format:
        reply_sections(cfg.reply_format)
        if recorded and recorded != cfg.reply_format and say:
            say(f"warning: {cfg.adapter} was trained on the {recorded} reply format; the rounds train it on "
                f"{cfg.reply_format}")
        return cfg.reply_format
    return recorded or "full"


def base_model(adapter: str) -> str:
    """The base a LoRA adapter was trained on (its adapter_config.json), or `embedded`."""
    from engine.llm.local import adapter_base

    return "embedded" if adapter == "embedded" else adapter_base(adapter) or "embedded"


def model_spec(cfg: ImproveConfig, adapter: str, temperature: float, reply: str) -> str:
    """The persuader spec that plays `adapter` (`embedded`: the base model) with the run's generation settings."""
    from engine.players.reply_schema import rule_options
    from engine.players.spec import PlayerSpec

    options = {"reply": reply, "temperature": f"{temperature:g}", "max_tokens": cfg.max_tokens, "dtype": cfg.dtype,
               **rule_options(cfg.conclude, cfg.disclose)}
    argument = "" if adapter == "embedded" else adapter
    return str(PlayerSpec("local", argument, {k: str(v) for k, v in options.items() if v is not None}))


def scenario_files(cfg: ImproveConfig) -> tuple[str, str]:
    """(training file, validation file): the given ones, or generated into the run's folder; checked apart.

    Neither may share a scenario id or signature with the held-out set, nor with each other, so a round's
    validation success is never measured on a game it trained on, and the held-out comparison stays untouched."""
    from engine.game.generator import HELDOUT_PATH, generate
    from engine.game.scenario import write_jsonl
    from engine.pipeline.dataprep import load_test_scenarios

    held_ids, held_sigs = load_test_scenarios(HELDOUT_PATH)
    out = Path(cfg.out)
    paths = []
    train_ids: set[str] = set()
    train_sigs: set[str] = set()
    for given, n, seed, what in ((cfg.train_scenarios, cfg.n_train, TRAIN_SEED, "train"),
                                 (cfg.val_scenarios, cfg.n_val, VAL_SEED, "val")):
        if given:
            paths.append(given)
        else:
            path = out / f"{what}-scenarios.jsonl"
            if not path.is_file():
                write_jsonl(generate(n, seed, prefix=f"improve-{what}", exclude=held_sigs | train_sigs), path)
            paths.append(str(path))
        ids, sigs = load_test_scenarios(paths[-1])
        if not ids:
            raise LabError(f"--{what}-scenarios: no scenarios in {paths[-1]}")
        if ids & held_ids or sigs & held_sigs:
            raise LabError(f"--{what}-scenarios {paths[-1]}: holds held-out scenario(s) (scenarios/heldout.jsonl); "
                           "the held-out set is kept for the final comparison")
        if what == "val" and (ids & train_ids or sigs & train_sigs):
            raise LabError(f"--val-scenarios {paths[-1]}: shares scenario(s) with the training set")
        if what == "train":
            train_ids, train_sigs = ids, sigs
    return paths[0], paths[1]


def _count(path: str) -> int:
    from engine.game.scenario import load_path

    return len(load_path(path))


# ----- data from the model's own games ----------------------------------------------------------------------------
def planner_replies(episode: Episode, reply: str) -> list[str]:
    """The planner's reply at every state the episode visited, in the reply format `reply` (DAgger's labels).

    The planner starts as it would have in this game (same scenario side, condition and seed) and, turn by turn,
    folds in what was actually said and answered (lies refused as the loop refused them), then says what it would
    do there. Its reply is written from its own move, belief and counterfactual, as its trajectories are."""
    from engine.game.episode import delivered_moves
    from engine.game.record import Turn
    from engine.players.persuaders.planner import Planner
    from engine.players.prompts import assistant_text

    scenario = episode.scenario
    revealed = revealed_state(scenario, episode.condition, episode.target.personality)
    view = PersuaderView(persuader_side(scenario), episode.condition, 1, [], revealed)
    planner = Planner()
    planner.start(view, episode.target.seed)
    out = []
    for turn in episode.turns:
        view.turn = turn.index
        move = planner.act(view)
        label = Turn.model_validate({"message": move.message, "moves": move.moves, "reasoning": move.reasoning,
                                     "belief": move.belief, "counterfactual": move.counterfactual,
                                     "target_reply": ""})
        out.append(assistant_text(label, reply=reply))
        delivered, _ = delivered_moves(scenario, turn.moves, episode.rules)
        view.history.append(Exchange(turn.message, delivered, turn.target_reply, list(turn.statements),
                                     list(turn.refused)))
    return out


@dataclass
class RoundData:
    rows: list[dict[str, Any]]
    games: int
    wins: int
    ei_rows: int
    dagger_rows: int


def winning_turns(episode: Episode) -> int:
    """How many of a won game's turns earned the win: those before the first turn taken right after the target
    named the goal as its choice, and that turn too if it concluded.

    What follows adds nothing to the win. A model that seldom concludes fills those turns with `ask_choice`, and
    learning from them taught the tutorial adapter to stop disclosing: its third expert-iteration round disclosed on
    28 of its 308 turns in 40 validation games against 168 of 312 (round 1) and won 6 of them against 20 (README,
    issue 16)."""
    from engine.players.reply_schema import names_goal

    turns = episode.turns
    for i in range(1, len(turns)):
        if names_goal(turns[i - 1].statements, episode.scenario.goal):
            return i + any(m.kind == "conclude" for m in turns[i].moves)
    return len(turns)


def round_data(episodes: list[Episode], mode: str, reply: str, round_: int, ei_turns: str = "all") -> RoundData:
    """The training rows (chatml, as `prepare` writes them) of one round's games under `mode` (see DATA_MODES).

    `ei`: every good turn (parsed, no lie) of a won game, as the model wrote it; with `ei_turns` `to_win` only the
    turns that earned the win (`winning_turns`). `dagger`: every turn of every game, the prompt the model saw and
    the planner's reply there. Games that did not finish teach nothing."""
    from engine.pipeline.dataprep import ScenarioCache, turn_examples

    cache = ScenarioCache()
    finished = [e for e in episodes if e.status == "finished" and e.outcome is not None]
    rows: list[dict[str, Any]] = []
    ei = dagger = 0
    for episode in finished:
        examples = turn_examples(episode, cache, reply=reply)
        if "ei" in mode.split("+") and episode.outcome and episode.outcome.success:
            upto = winning_turns(episode) if ei_turns == "to_win" else len(examples)
            kept = [ex for ex in examples[:upto] if ex.kind == "good"]
            rows += [_row(ex, "ei", round_) for ex in kept]
            ei += len(kept)
        if "dagger" in mode.split("+"):
            for ex, label in zip(examples, planner_replies(episode, reply), strict=True):
                rows.append(_row(replace(ex, completion={"role": "assistant", "content": label}), "dagger", round_))
            dagger += len(examples)
    wins = sum(1 for e in finished if e.outcome and e.outcome.success)
    return RoundData(rows, len(finished), wins, ei, dagger)


def training_mix(cfg: ImproveConfig, k: int, own: list[str]) -> tuple[list[dict[str, Any]], int]:
    """Round k's training rows and how many of them are expert rows.

    `own`: the data files of rounds 1..k (the model's games), all of them under `aggregate`, else round k's. With
    `expert_data`, rows drawn from it without replacement (seeded by the run seed and the round, so each round
    meets other demonstrations and a rerun the same ones) make up `expert_share` of the file."""
    import random

    from engine.jsonl import json_lines

    rows = [row for path in (own if cfg.aggregate else own[-1:]) for _, row in json_lines(path)]
    if not cfg.expert_data:
        return rows, 0
    expert = [row for _, row in json_lines(cfg.expert_data)]
    want = round(len(rows) * cfg.expert_share / (1 - cfg.expert_share))
    drawn = random.Random(cfg.seed * 1000 + k).sample(expert, min(want, len(expert)))
    return rows + drawn, len(drawn)


def _row(ex: Example, source: str, round_: int) -> dict[str, Any]:
    from engine.pipeline.dataprep import sft_row

    row = sft_row(ex, "chatml")
    row["meta"] = {**row["meta"], "source": source, "round": round_}
    return row


# ----- the run ----------------------------------------------------------------------------------------------------
def open_run(store: Store, cfg: ImproveConfig) -> dict[str, Any]:
    """The run whose folder is `cfg.out`, created if new; a rerun must use the same settings (more rounds may be
    asked for: the run goes on from where it stopped)."""
    rows = store.find_improve_runs(str(Path(cfg.out).resolve()))
    if rows:
        row = rows[0]
        old = {**LEGACY, **json.loads(row["config_json"])}
        new = cfg.to_dict()
        diff = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in new.items() if k != "rounds" and old.get(k) != v]
        if diff:
            raise LabError(f"--out {cfg.out} holds improve run {row['id']} with other settings ({', '.join(diff)}); "
                           "pick a new folder")
        store.update_improve_run(row["id"], config_json=dumps(new), rounds=cfg.rounds, status="running",
                                 pid=os.getpid(), error=None)
        return store.find_improve_runs(row["id"])[0]
    run_id = uuid.uuid4().hex[:12]
    store.add_improve_run({
        "id": run_id, "name": Path(cfg.out).name, "out_dir": str(Path(cfg.out).resolve()), "status": "running",
        "config_json": dumps(cfg.to_dict()), "start_model": cfg.adapter, "rounds": cfg.rounds, "pid": os.getpid(),
    })
    return store.find_improve_runs(run_id)[0]


def improve(store: Store, cfg: ImproveConfig, *, say: Say = print, progress: Progress | None = None) -> dict[str, Any]:
    """Run (or continue) every round of `cfg`; returns the run row and its rounds. Ctrl-C marks it interrupted."""
    cfg.check()
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    reply = reply_format(cfg, say)
    train_file, val_file = scenario_files(cfg)
    run = open_run(store, cfg)
    say(f"improve run {run['id']} in {cfg.out}: {cfg.rounds} round(s) of {cfg.data} on {train_file}, "
        f"validated on {val_file} (reply format {reply})")
    try:
        adapter = cfg.adapter
        _evaluate_round(store, cfg, run, 0, adapter, val_file, reply, say, progress)
        for k in range(1, cfg.rounds + 1):
            adapter = _round(store, cfg, run, k, adapter, train_file, val_file, reply, say, progress)
    except KeyboardInterrupt:
        store.update_improve_run(run["id"], status="interrupted")
        raise
    except Exception as exc:
        store.update_improve_run(run["id"], status="failed", error=str(exc)[:2000])
        raise
    store.update_improve_run(run["id"], status="finished")
    return {"run": store.find_improve_runs(run["id"])[0], "rounds": store.improve_rounds(run["id"])}


def _eval(store: Store, config: EvalConfig, name: str, what: str, concurrency: int,
          progress: Progress | None) -> dict[str, Any]:
    """An evaluation run by name (a rerun resumes it, skipping its finished games); its row with the results."""
    from engine.pipeline.evaluation import evaluate

    count = [0, 0]  # total, done

    def on_start(total: int, done: int) -> None:
        count[:] = [total, done]
        if progress:
            progress(what, done, total)

    def on_episode(episode: Episode) -> None:
        count[1] += 1
        if progress:
            progress(what, count[1], count[0])

    result = evaluate(store, config, name=name, concurrency=concurrency, on_start=on_start, on_episode=on_episode)
    if result.run["status"] != "finished":
        raise LabError(f"{what}: evaluation run {name} ended {result.run['status']}: "
                       f"{result.results.get('first_error', '')}")
    return result.run


def _eval_config(cfg: ImproveConfig, model: str, scenarios: str, seeds: int, seed: int) -> EvalConfig:
    from engine.pipeline.evaluation import EvalConfig

    return EvalConfig(model=model, human_agent=cfg.target, scenarios=scenarios, num_eval=_count(scenarios),
                      personality=cfg.personality, seeds=seeds, max_turns=cfg.max_turns, seed=seed)


def _evaluate_round(store: Store, cfg: ImproveConfig, run: dict[str, Any], k: int, adapter: str, val_file: str,
                    reply: str, say: Say, progress: Progress | None) -> None:
    """Round k's validation: the same scenarios and seeds every round, greedy by default."""
    done = {r["round"]: r for r in store.improve_rounds(run["id"])}.get(k)
    if done and done["status"] == "finished":
        return
    store.put_improve_round(run["id"], k, status="evaluating", adapter=adapter)
    name = f"improve-{run['id']}-r{k}-val"
    model = model_spec(cfg, adapter, cfg.eval_temperature, reply)
    row = _eval(store, _eval_config(cfg, model, val_file, cfg.val_games, cfg.seed), name, f"round {k} validation",
                cfg.concurrency, progress)
    success = json.loads(row["results_json"])["success"]
    store.put_improve_round(run["id"], k, status="finished", eval_run_id=row["id"], val_successes=success["successes"],
                            val_n=success["n"])
    say(f"round {k}: validation {success['successes']}/{success['n']} (run {name})")


def _round(store: Store, cfg: ImproveConfig, run: dict[str, Any], k: int, adapter: str, train_file: str,
           val_file: str, reply: str, say: Say, progress: Progress | None) -> str:
    """Play, build data, train and evaluate round k from `adapter`; returns the round's adapter. Each finished
    step is in the round's row, so a rerun picks up where a killed one stopped."""
    from engine.pipeline.evaluation import run_episodes

    row = {r["round"]: r for r in store.improve_rounds(run["id"])}.get(k) or {}
    if row.get("status") == "finished":
        return row["adapter"]
    folder = Path(cfg.out) / f"round-{k}"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"improve-{run['id']}-r{k}-play"
    store.put_improve_round(run["id"], k, status="playing")
    # fresh seeds every round (the run seed + the round): each round meets new games on the training scenarios
    played = _eval(store, _eval_config(cfg, model_spec(cfg, adapter, cfg.temperature, reply), train_file,
                                       cfg.games_per_scenario, cfg.seed + 1000 * k),
                   name, f"round {k} games", cfg.concurrency, progress)
    if adapter != "embedded":  # played for the last time: its weights and prefix cache can go
        from engine.llm.local import release

        release(adapter)
    episodes = run_episodes(store, played["id"])
    data = round_data(episodes, cfg.data, reply, k, cfg.ei_turns)
    data_path = folder / "data.jsonl"
    with atomic_write(data_path) as fh:  # rebuilt from the stored games on a rerun: the same rows
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in data.rows)
    store.put_improve_round(run["id"], k, status="training", play_run_id=played["id"], games=data.games, wins=data.wins,
                            data_path=str(data_path), ei_rows=data.ei_rows, dagger_rows=data.dagger_rows)
    say(f"round {k}: {data.wins}/{data.games} games won; {data.ei_rows} expert-iteration and {data.dagger_rows} "
        f"DAgger rows -> {data_path}")
    finished = [e for e in episodes if e.status == "finished" and e.outcome is not None]
    rounds = {r["round"]: r for r in store.improve_rounds(run["id"])}
    mix, n_expert = training_mix(cfg, k, [rounds[j]["data_path"] for j in range(1, k) if rounds[j]["data_path"]]
                                 + [str(data_path)])
    train_path = folder / "train.jsonl"
    with atomic_write(train_path) as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in mix)
    if len(mix) != len(data.rows):
        say(f"round {k}: training on {len(mix)} rows ({len(mix) - n_expert} from the model's games of "
            f"{'rounds 1-' + str(k) if cfg.aggregate and k > 1 else 'this round'}, {n_expert} expert rows) "
            f"-> {train_path}")
    if not (finished if cfg.method == "grpo" else data.rows):  # nothing to learn from: the model stays as it was
        say(f"round {k}: no training rows; the adapter stays {adapter}")
        previous = rounds[k - 1]
        store.put_improve_round(run["id"], k, status="finished", adapter=adapter, eval_run_id=previous["eval_run_id"],
                                val_successes=previous["val_successes"], val_n=previous["val_n"])
        return adapter
    result = _train(store, cfg, run, k, adapter, str(train_path), folder, say, finished, reply)
    store.put_improve_round(run["id"], k, train_run_id=result["run_id"], adapter=result["output"])
    _evaluate_round(store, cfg, run, k, result["output"], val_file, reply, say, progress)
    return result["output"]


def _train(store: Store, cfg: ImproveConfig, run: dict[str, Any], k: int, adapter: str, data: str, folder: Path,
           say: Say, episodes: list[Episode], reply: str) -> dict[str, Any]:
    """Train round k's adapter from `adapter`: SFT on `data`, or GRPO on the round's games (`episodes`). A finished
    run in the round's folder is reused, an interrupted one resumed from its checkpoint; one that saved no
    checkpoint leaves its folder, and the round trains in the next (`adapter-2`, ...)."""
    from engine.pipeline.training import grpo, runs, sft
    from engine.pipeline.training.config import load_config

    attempt = 1
    while True:
        output = folder / ("adapter" if attempt == 1 else f"adapter-{attempt}")
        holders = runs.output_holders(store, output)
        if not holders and not (output.is_dir() and any(output.iterdir())):
            resume = None
            break
        if holders and holders[0]["status"] == "finished":
            return {"run_id": holders[0]["id"], "output": str(output)}
        if holders and runs.resumable(store, holders[0]) and runs.last_checkpoint(output):
            resume = holders[0]["id"]
            break
        attempt += 1
    overrides = {
        "model": base_model(cfg.adapter), "data": data, "output": str(output), "method": "sft",
        "max_steps": cfg.steps, "max_train_tokens": cfg.max_train_tokens, "lr": cfg.lr,
        "init_adapter": None if adapter == "embedded" else adapter, "name": f"{run['name']}-r{k}",
    }
    tcfg = load_config(cfg.train_config, overrides)
    say(f"round {k}: training {output} from {adapter} ({cfg.method}, {cfg.steps} steps)"
        + (f", resuming {resume}" if resume else ""))

    def echo(row: dict[str, Any], total: int) -> None:  # one line per step, as `ptom-lab finetune` prints
        say(runs.format_step(row, total))

    if cfg.method == "grpo" and not resume:
        return grpo.train_on_games(tcfg, store, episodes, reply=reply, echo=echo, say=say)
    if cfg.method == "grpo":  # its stored config names the prompt file it wrote
        return grpo.train(load_config(None, base=runs.run_config(holders[0])), store, resume=resume, echo=echo, say=say)
    return sft.train(tcfg, store, resume=resume, echo=echo, say=say)


# ----- reading runs back ------------------------------------------------------------------------------------------
def get_run(store: Store, key: str) -> dict[str, Any]:
    """An improve run by id, unique id prefix or output folder; its status `interrupted` once its process is gone."""
    from engine.pipeline.training.runs import pid_alive

    rows = store.find_improve_runs(key)
    if len(rows) != 1:
        raise LabError(f"no improve run '{key}' in {store.path}" if not rows else f"'{key}' is ambiguous")
    row = dict(rows[0])
    if row["status"] == "running" and not pid_alive(row["pid"]):
        row["status"] = "interrupted"
    return row


def find_run(store: Store, key: str) -> dict[str, Any] | None:
    """`get_run`, or None when no improve run answers to `key` (it may name a training run)."""
    try:
        return get_run(store, key)
    except LabError:
        return None


def curve(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Validation success by round, with McNemar's paired test of each round against round 0 on the same games."""
    from engine.pipeline.evaluation import run_episodes
    from engine.pipeline.metrics import paired

    rounds = store.improve_rounds(run_id)
    first = next((r for r in rounds if r["round"] == 0 and r["eval_run_id"]), None)
    base = run_episodes(store, first["eval_run_id"]) if first else []
    out = []
    for r in rounds:
        rate = r["val_successes"] / r["val_n"] if r["val_n"] else None
        test = paired(base, run_episodes(store, r["eval_run_id"])) if first and r["eval_run_id"] and r["round"] else None
        out.append({**{k: v for k, v in r.items() if k not in ("id", "improve_id")}, "rate": rate,
                    "p_vs_round0": test["p_value"] if test else None})
    return out


def curve_lines(rows: list[dict[str, Any]], width: int = 40) -> list[str]:
    """Validation success by round as text bars: `round 2  ########----  9/20 45%  p=0.031 vs round 0`."""
    lines = []
    for r in rows:
        if r["rate"] is None:
            lines.append(f"round {r['round']}  {r['status']}")
            continue
        filled = round(r["rate"] * width)
        p = f"  p={r['p_vs_round0']:.3g} vs round 0" if r.get("p_vs_round0") is not None else ""
        lines.append(f"round {r['round']}  {'#' * filled}{'-' * (width - filled)}  {r['val_successes']}/{r['val_n']} "
                     f"{r['rate']:.0%}{p}")
    return lines


def run_rows(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """Improve runs as rows of `ptom-lab runs list` (method `improve`, steps = rounds trained)."""
    out = []
    for row in store.improve_runs(limit):
        run = get_run(store, row["id"])
        cfg = json.loads(run["config_json"])
        trained = sum(1 for r in store.improve_rounds(run["id"]) if r["round"] > 0 and r["status"] == "finished")
        out.append({"id": run["id"], "status": run["status"], "backend": "local", "method": "improve",
                    "step": trained, "total_steps": run["rounds"], "loss": None, "base_model": run["start_model"],
                    "data": cfg.get("data"), "output": run["out_dir"], "created_at": run["created_at"]})
    return out
