"""The one episode loop: persuader speaks, target answers, until a `conclude` or the turn limit.

Under `rules="mindgames"` (MindGames' protocol) every one of the `max_turns` messages is played (a `conclude`
ends nothing), and a message with a false claim is rejected whole: the target never sees it, true moves included.

Listeners (the store, the CLI printer, the TUI) subscribe to its events. A player's exception ends the game
as `errored` with the reason; Ctrl-C ends it as `interrupted`: either way every finished turn has already
been handed to the listeners, so nothing finished is lost.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any, Protocol

from engine.errors import LabError
from engine.game.interfaces import (
    CONDITIONS,
    RULE_SETS,
    Exchange,
    Persuader,
    PersuaderView,
    Target,
    TargetReply,
    persuader_side,
    revealed_state,
)
from engine.game.mindgames import REJECTED_REPLY
from engine.game.moves import Move
from engine.game.record import Episode, Outcome, PersuaderInfo, Refusal, TargetInfo, Turn, refusal
from engine.game.scenario import Scenario


class EpisodeListener(Protocol):
    def on_start(self, episode: Episode) -> None: ...
    def on_turn(self, episode: Episode, turn: Turn) -> None: ...
    def on_end(self, episode: Episode) -> None: ...


def check_disclosures(scenario: Scenario, moves: list[Move]) -> tuple[list[Move], list[Refusal]]:
    """Split moves into those delivered and the lies refused (the no-lying rule)."""
    delivered: list[Move] = []
    refused: list[Refusal] = []
    for m in moves:
        lie = refusal(m, scenario)
        if lie is None:
            delivered.append(m)
        else:
            refused.append(lie)
    return delivered, refused


def deliver(
    scenario: Scenario, target: Target, message: str, moves: list[Move], turn: int, rules: str = "lab"
) -> tuple[list[Move], list[Refusal], TargetReply]:
    """One message through the no-lying rule to the target: the moves that reached it, the lies refused, its reply.

    The episode loop plays every turn with it, and GRPO's rewards (`engine.pipeline.training.grpo`) replay a
    recorded game with it, so a replayed state is the state the game was in."""
    delivered, refused = delivered_moves(scenario, moves, rules)
    if refused and rules == "mindgames":
        return delivered, refused, TargetReply(REJECTED_REPLY)
    return delivered, refused, target.respond(message, delivered, turn)


def delivered_moves(scenario: Scenario, moves: list[Move], rules: str = "lab") -> tuple[list[Move], list[Refusal]]:
    """The no-lying rule under `rules`: the moves that reach the target and the lies refused. Under MindGames'
    protocol a lie rejects its whole message, so nothing reaches the target. Also what a recorded turn delivered."""
    delivered, refused = check_disclosures(scenario, moves)
    return ([] if refused and rules == "mindgames" else delivered), refused


def ends_game(delivered: list[Move], rules: str = "lab") -> bool:
    """Whether a delivered message ends the game early: a `conclude` does under the lab's rules; MindGames plays
    every message."""
    return rules == "lab" and any(m.kind == "conclude" for m in delivered)


def play(
    scenario: Scenario,
    persuader: Persuader,
    target: Target,
    *,
    personality: str = "cooperative",
    condition: str = "hidden",
    seed: int = 0,
    kind: str = "play",
    episode_id: str | None = None,
    listeners: Iterable[EpisodeListener] = (),
    meta: dict[str, Any] | None = None,
    rules: str = "lab",
) -> Episode:
    if condition not in CONDITIONS:
        raise LabError(f"unknown condition '{condition}' (known: {', '.join(CONDITIONS)})")
    if rules not in RULE_SETS:
        raise LabError(f"unknown rules '{rules}' (known: {', '.join(RULE_SETS)})")
    listeners = list(listeners)
    episode = Episode(
        id=episode_id or uuid.uuid4().hex[:12],
        scenario=scenario,
        persuader=PersuaderInfo(name=persuader.name),
        target=TargetInfo(kind=target.name, personality=personality, seed=seed),
        condition=condition,
        rules=rules,
        status="running",
        kind=kind,
        meta=dict(meta or {}),
    )
    view = PersuaderView(persuader_side(scenario), condition, 1, [], revealed_state(scenario, condition, personality))
    for listener in listeners:
        listener.on_start(episode)
    try:
        target.rules = rules
        target.start(scenario, personality, seed)
        persuader.start(view, seed)
        concluded = False
        for index in range(1, scenario.max_turns + 1):
            view.turn = index
            started = time.perf_counter()
            pturn = persuader.act(view)
            delivered, refused, reply = deliver(scenario, target, pturn.message, pturn.moves, index, rules)
            turn = Turn(
                index=index,
                message=pturn.message,
                moves=pturn.moves,
                refused=refused,
                target_reply=reply.text,
                statements=reply.statements,
                target_state=target.state(),
                reasoning=pturn.reasoning,
                belief=pturn.belief,
                counterfactual=pturn.counterfactual,
                raw=pturn.raw,
                parse_ok=pturn.parse_ok,
                parse_error=pturn.parse_error,
                usage=pturn.usage,
                target_usage=reply.usage,
                latency_ms=(time.perf_counter() - started) * 1000.0,
            )
            episode.turns.append(turn)
            view.history.append(Exchange(turn.message, delivered, reply.text, reply.statements, refused))
            for listener in listeners:
                listener.on_turn(episode, turn)
            if ends_game(delivered, rules):
                concluded = True
                break
        choice, words = target.choose()
        turns = episode.turns
        episode.outcome = Outcome(
            choice=choice,
            success=choice == scenario.goal,
            turns=len(turns),
            violations=sum(len(t.refused) for t in turns),
            mental_state_appeals=sum(1 for t in turns for m in t.moves if m.is_mental_state_appeal),
            parse_failures=sum(1 for t in turns if not t.parse_ok),
            final_words=words,
        )
        episode.meta["concluded"] = concluded
        episode.status = "finished"
    except KeyboardInterrupt:
        episode.status, episode.error = "interrupted", "interrupted by the user"
        _end(episode, listeners)
        raise
    except Exception as exc:  # a player failed: the game ends, the run goes on
        episode.status = "errored"
        episode.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, LabError) else str(exc)
    _end(episode, listeners)
    return episode


def _end(episode: Episode, listeners: list[EpisodeListener]) -> None:
    for listener in listeners:
        listener.on_end(episode)
