"""Online RL on the model's own games: trl's GRPOTrainer, rewarded by the game itself.

The prompts are the persuader prompts at every turn of games the model played (built by data prep's
`turn_examples`, so the model is trained on exactly what it saw), each with the game state as extra columns
(`data.REQUIRED["grpo"]`: the scenario, the turn, the moves so far, the target's personality and seed, the condition
and the rules). trl samples `num_generations` replies per prompt and hands every reply, with those columns, to two
reward functions; GRPO's group-relative advantage does the rest (no policy-gradient loop of our own):

- `dense_reward`: the planner's belief model (`BeliefTracker`) scores P(the target ends on the goal) after the
  reply's moves reach the state: the rule-based target is replayed over the recorded moves with the game's seed, the
  reply goes through the same no-lying rule as in play (`episode.deliver`), and the tracker folds in the whole
  dialogue, this reply and the target's answer included. Each refused lie costs `LIE_PENALTY`; a reply that does not
  parse scores `PARSE_FAILURE`, below any reply that does.
- `outcome_reward`: when the reply ends the game (a delivered `conclude` under the lab's rules, or the last turn),
  1 if the replayed target then chooses the goal, else 0; None (no reward from this function) when the game goes on.

No KL term (GRPOConfig beta 0, trl's default): with a LoRA adapter the reference would be the bare base model, not
the adapter the run continues from, and GRPO's clipped ratio already keeps each step close to the sampling policy.
The run itself (model, adapter, callbacks, store) is `loop.run_training`, as for SFT, KTO and DPO.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from engine.errors import LabError
from engine.files import atomic_write
from engine.game.episode import deliver, ends_game
from engine.game.interfaces import Exchange, persuader_side, revealed_state
from engine.game.moves import parse_move, parse_reply
from engine.game.record import Episode
from engine.game.scenario import Scenario
from engine.pipeline.dataprep import ScenarioCache, turn_examples
from engine.pipeline.training import loop, runs
from engine.pipeline.training.config import TrainConfig
from engine.pipeline.training.data import REQUIRED
from engine.players.belief import BeliefTracker
from engine.players.reply_schema import REPLY_FORMATS, writes_message
from engine.players.targets.rational import RationalTarget
from engine.store import Store

PROMPTS_FILE = "grpo_prompts.jsonl"  # in the run's output folder: the run's data, as every run has a data file
COMPLETION_TOKENS = {"moves": 48, "compact": 96, "full": 320}  # a planner reply in each format fits with room to spare
PARSE_FAILURE = -1.0  # below any parsed reply: P(goal) is at least 0 and lies are rare
LIE_PENALTY = 0.5  # per refused lie: a lie changes nothing in the game, so without it a lie scores like a no-op
REWARD_WEIGHTS = (1.0, 1.0)  # dense, outcome: a won game is worth as much as a sure P(goal)


@dataclass(frozen=True)
class MoveScore:
    """What one sampled reply earns at one state."""

    dense: float
    outcome: float | None  # None: the game goes on after this reply


# ----- prompts from played games -------------------------------------------------------------------------------
def _history(episode: Episode, upto: int) -> list[dict[str, Any]]:
    return [{"message": t.message, "moves": [m.text() for m in t.moves]} for t in episode.turns[:upto]]


def prompt_rows(episodes: Iterable[Episode], *, reply: str = "compact", self_belief: bool = False) -> list[dict[str, Any]]:
    """One GRPO row per persuader turn of the games: the prompt the model saw and the state its rewards rebuild.

    Only games against the rule-based rational target can be replayed; each is replayed once here and must answer
    as recorded, so a row never trains on a state the game was not in."""
    cache = ScenarioCache()
    rows = []
    for ep in episodes:
        if ep.target.kind != "rational":
            raise LabError(f"game {ep.id}: GRPO replays the rational target to score replies; this game was played "
                           f"against '{ep.target.kind}'")
        try:  # an unknown personality, or a target that answers otherwise, is named here and not mid-run
            replay(ep.scenario, ep.target.personality, ep.target.seed, ep.rules, _history(ep, len(ep.turns)),
                   recorded=[t.target_reply for t in ep.turns])
        except LabError as exc:
            raise LabError(f"game {ep.id}: {exc}") from None
        scenario = json.dumps(ep.scenario.to_dict(), sort_keys=True)
        for ex in turn_examples(ep, cache, self_belief, reply):
            rows.append({"prompt": ex.prompt, "scenario": scenario, "turn": ex.turn,
                         "history": json.dumps(_history(ep, ex.turn - 1)), "personality": ep.target.personality,
                         "condition": ep.condition, "seed": ep.target.seed, "rules": ep.rules, "reply": reply})
    if not rows:
        raise LabError("no GRPO prompts: the games given have no persuader turns")
    return rows


# ----- rewards -------------------------------------------------------------------------------------------------
def replay(scenario: Scenario, personality_name: str, seed: int, rules: str, history: list[dict[str, Any]],
           recorded: list[str] | None = None) -> tuple[RationalTarget, list[Exchange]]:
    """The rational target after the recorded moves, and the exchanges as the persuader saw them.

    The target is seeded as in play and every message goes through `episode.deliver`, so its random draws (doubts,
    declines, phrasing) fall as they did. With `recorded` (the target's recorded replies) a diverging answer is an
    error: the game was played with another target or seed."""
    target = RationalTarget()
    target.rules = rules
    target.start(scenario, personality_name, seed)
    exchanges = []
    for index, item in enumerate(history, 1):
        moves = [parse_move(text, scenario) for text in item["moves"]]
        delivered, refused, answer = deliver(scenario, target, item["message"], moves, index, rules)
        if recorded is not None and answer.text != recorded[index - 1]:
            raise LabError(f"turn {index}: the rational target (personality {personality_name}, seed {seed}) does not "
                           "answer as recorded; GRPO can only replay games played against it")
        exchanges.append(Exchange(item["message"], delivered, answer.text, answer.statements, refused))
    return target, exchanges


def score_move(text: str, *, scenario: str, turn: int, history: str, personality: str, condition: str, seed: int,
               rules: str, reply: str = "compact") -> MoveScore:
    """The rewards of one reply at the state of one GRPO row (its columns, as trl hands them over; prompt files
    written before the `moves` format have no `reply` column and hold replies with a MESSAGE)."""
    game = Scenario.from_dict(json.loads(scenario), check_interesting=False)
    side = persuader_side(game)
    target, exchanges = replay(game, personality, seed, rules, json.loads(history))
    parsed = parse_reply(text, side, writes_message(reply))
    moves = parsed.moves if parsed.ok else []  # as in play: an unreadable reply reaches the target as words only
    delivered, refused, answer = deliver(game, target, parsed.message or text, moves, turn, rules)
    exchanges.append(Exchange(parsed.message or text, delivered, answer.text, answer.statements, refused))
    tracker = BeliefTracker(side, condition, revealed_state(game, condition, personality))
    tracker.observe_all(exchanges)
    p_goal = float(tracker.choice_probs()[tracker.goal])
    dense = p_goal - LIE_PENALTY * len(refused) if parsed.ok else PARSE_FAILURE
    ends = turn >= game.max_turns or ends_game(delivered, rules)
    outcome = float(target.choose()[0] == game.goal) if ends else None
    return MoveScore(dense, outcome)


def _completion_text(completion: Any) -> str:
    """trl hands conversational completions as [{"role": "assistant", "content": ...}], plain ones as text."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


def _scores(completions: list[Any], columns: dict[str, list[Any]]) -> list[MoveScore]:
    names = [name for name in (*REQUIRED["grpo"], "reply") if name != "prompt" and name in columns]
    return [score_move(_completion_text(c), **{name: columns[name][i] for name in names})
            for i, c in enumerate(completions)]


def dense_reward(completions: list[Any], **columns: Any) -> list[float]:
    """trl reward function: P(goal) under the planner's belief after each reply, less its lies (module docstring)."""
    return [s.dense for s in _scores(completions, columns)]


def outcome_reward(completions: list[Any], **columns: Any) -> list[float | None]:
    """trl reward function: the game's success for replies that end it, None for the others."""
    return [s.outcome for s in _scores(completions, columns)]


# ----- training ------------------------------------------------------------------------------------------------
def _grpo_config(**kwargs: Any) -> Any:
    """GRPOConfig from the shared TrainingArguments: GRPO cuts no input (`max_length` is SFT's, KTO's, DPO's); a
    sampled reply stops at `max_completion_length` instead."""
    from trl import GRPOConfig

    kwargs.pop("max_length", None)
    return GRPOConfig(**kwargs)


def trainer_parts(cfg: TrainConfig) -> tuple[Any, Any, dict[str, Any]]:
    from trl import GRPOTrainer

    return _grpo_config, partial(GRPOTrainer, reward_funcs=[dense_reward, outcome_reward]), {
        "num_generations": cfg.num_generations,
        "max_completion_length": cfg.max_completion_length or COMPLETION_TOKENS["full"],
        "reward_weights": list(REWARD_WEIGHTS), "beta": 0.0, "use_vllm": False,
    }


def check(cfg: TrainConfig) -> None:
    """GRPO's own limits, as one-line errors before the model is loaded."""
    if cfg.backend != "local":
        raise LabError("GRPO trains a local LoRA adapter on the model's own games; the OpenAI backend cannot")
    if cfg.num_generations < 2:
        raise LabError(f"num_generations must be at least 2 (GRPO compares replies to one prompt), got "
                       f"{cfg.num_generations}")
    if (cfg.batch_size * cfg.grad_accum) % cfg.num_generations:
        raise LabError(f"batch_size x grad_accum ({cfg.batch_size} x {cfg.grad_accum}) must be a multiple of "
                       f"num_generations ({cfg.num_generations}): each step samples whole groups of replies")
    if cfg.max_completion_length is not None and cfg.max_completion_length < 1:
        raise LabError(f"max_completion_length must be at least 1, got {cfg.max_completion_length}")


def train(cfg: TrainConfig, store: Store, *, resume: str | None = None, callbacks: list[Any] | None = None,
          echo: loop.Echo | None = None, say: loop.Say | None = None) -> dict[str, Any]:
    """GRPO on a prompt file written by `train_on_games` (`cfg.data`); also how a stopped GRPO run resumes."""
    check(cfg)
    return loop.run_training(cfg, store, trainer_parts, resume=resume, callbacks=callbacks, echo=echo, say=say)


def train_on_games(cfg: TrainConfig, store: Store, episodes: list[Episode], *, reply: str = "compact",
                   self_belief: bool = False, callbacks: list[Any] | None = None, echo: loop.Echo | None = None,
                   say: loop.Say | None = None) -> dict[str, Any]:
    """GRPO on the states of `episodes` (the model's own games); the result dict of `sft.train`.

    `reply` is the reply format the model plays with (`prompts.persuader_messages`); it sets the prompts and, unless
    the config gives one, the completion length. The prompts go to `<output>/grpo_prompts.jsonl`, the run's data
    file, so the stored run names what it trained on and `--resume` can continue it."""
    if not cfg.output:
        raise LabError("no output folder: GRPO needs cfg.output for its adapter and its prompt file")
    cfg = dataclasses.replace(cfg, method="grpo",
                              max_completion_length=cfg.max_completion_length or COMPLETION_TOKENS.get(reply))
    check(cfg)
    rows = prompt_rows(episodes, reply=reply, self_belief=self_belief)
    Path(cfg.output).mkdir(parents=True, exist_ok=True)
    data = Path(cfg.output) / PROMPTS_FILE
    with atomic_write(data) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    cfg = dataclasses.replace(cfg, data=str(data)).validate()
    if say:
        say(f"GRPO on {len(rows)} prompts from {len(episodes)} games, {cfg.num_generations} replies each")
    result = loop.run_training(cfg, store, trainer_parts, callbacks=callbacks, echo=echo, say=say)
    runs.write_reply_format(cfg.output, reply, dict.fromkeys(REPLY_FORMATS, 0) | {reply: len(rows)})
    return result
