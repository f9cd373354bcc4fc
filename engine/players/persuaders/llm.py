"""The language-model persuader: any backend (Claude, OpenAI, compatible servers, local models) plays it.

Each turn it builds its request with the shared prompt builder (`engine.players.prompts.messages_for_view`, the same
text a trained model saw in its training data), asks the model, and parses the reply with
`engine.game.moves.parse_reply` into reasoning, counterfactual, moves and message. A reply that cannot be parsed gets
ONE repair request that says what was wrong; if that fails too the turn is logged as a parse failure
(`parse_ok=False`) and the game goes on with the reply's free text and no moves.

Structured output (`?structured=1`, the default for OpenAI, Claude and local models): the API holds the reply to
a JSON schema built for the turn (`engine.players.reply_schema`: the lab's moves, the scenario's ids, only true
disclosures), read back into the free-text reply so both paths parse alike; a local model decodes its free-text
reply under a grammar with the same moves (`engine.llm.grammar`), so its MOVES line always parses. The reply
format (`?reply=full|compact|moves`; `moves`: the model writes only MOVES and the message is rendered from them,
as the planner's is) must be the one the model was trained on (`prepare --reply-format`): an adapter made
by `ptom-lab finetune` records it (`ptom_reply.json`), plays it without `?reply=`, and a `?reply=` that differs
gets one warning (`format_warning`) from whoever starts the games.

Belief state (`?belief=` in the spec):
- `tracker` (default): the engine's Bayesian `BeliefTracker` follows the target's replies; its belief goes in
  the prompt and on the turn.
- `self`: the model writes its own BELIEF section, which is read back into the belief schema.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Callable
from typing import Any

from engine.errors import LabError
from engine.game.interfaces import Persuader, PersuaderTurn, PersuaderView
from engine.game.moves import parse_reply
from engine.game.phrasing import persuader_message
from engine.game.scenario import Scenario
from engine.llm.base import Backend, ChatResult, GenerationOptions, combine_usage
from engine.players.prompts import MOVE_HELP, PROMPT_VERSION, messages_for_view
from engine.players.reply_schema import (
    held_moves,
    json_reply_text,
    reply_grammar,
    reply_schema,
    reply_sections,
    rule_options,
    writes_message,
)
from engine.players.spec import PlayerSpec

BELIEF_MODES = ("tracker", "self")
DEFAULT_OPTIONS = GenerationOptions(max_tokens=300, temperature=0.7)
LOCAL_OPTIONS = GenerationOptions(max_tokens=160, temperature=0.7)  # the CPU writes ~20 tokens/s per game


class LLMPersuader(Persuader):
    def __init__(
        self,
        backend: Backend,
        belief: str = "tracker",
        options: GenerationOptions = DEFAULT_OPTIONS,
        name: str | None = None,
        reply: str = "full",
        structured: bool = False,
        trained_reply: str | None = None,
        fresh: bool = True,
        trained_layout: int | None = None,
        conclude: str = "any",
        disclose: str = "any",
    ) -> None:
        if belief not in BELIEF_MODES:
            raise LabError(f"unknown belief mode '{belief}' (known: {', '.join(BELIEF_MODES)})")
        reply_sections(reply)  # an unknown reply format fails here, before any game starts
        if structured and not (backend.structured_output or backend.grammar_output):
            raise LabError(f"{backend.describe()} has no structured output: leave out structured=1")
        rules = rule_options(conclude, disclose)
        if rules and not structured:
            option, rule = next(iter(rules.items()))
            raise LabError(f"{option}={rule} holds back a move, which needs structured output: leave out structured=0")
        self.backend = backend
        self.belief_mode = belief
        self.options = options
        self.reply = reply
        self.trained_reply = trained_reply  # the format the adapter was trained on, where it recorded one
        self.trained_layout = trained_layout  # the prompt layout it was trained on (`prompts.PROMPT_VERSION`)
        self.structured = structured
        self.grammar = structured and not backend.structured_output  # decoded here, under a grammar
        self.fresh = fresh  # structured output leaves out the moves the target has answered for good (`spent_moves`)
        self.conclude = conclude  # `stated`: `conclude` is offered only right after the target chose the goal
        self.disclose = disclose  # `stated`: no disclosure the target's stated preferences show to hurt the goal
        marks = [text for text, on in (("belief=self", belief == "self"), (f"reply={reply}", reply != "full"),
                                       ("fresh=0", structured and not fresh)) if on]
        marks += [f"{option}={rule}" for option, rule in rules.items()]
        self.name = name or backend.describe() + ("?" + "&".join(marks) if marks else "")
        self.on_text: Callable[[str], None] | None = None  # set (e.g. by the TUI) to stream the reply as it comes
        self.tracker = None
        self._seen = 0
        self._phrasing = random.Random(0)  # reseeded per game: the `moves` format's messages read the same per seed

    @property
    def format_warning(self) -> str | None:
        """One line when the reply format asked for, or this lab's prompt layout, is not the one the model was
        trained on, else None."""
        if self.trained_reply is not None and self.trained_reply != self.reply:
            return (f"warning: {self.backend.describe()} was trained on the {self.trained_reply} reply format but "
                    f"plays with reply={self.reply}: its replies will parse worse and its results will suffer "
                    f"(leave out ?reply= to play the {self.trained_reply} format)")
        if self.trained_layout is not None and self.trained_layout != PROMPT_VERSION:
            return (f"warning: {self.backend.describe()} was trained on prompt layout {self.trained_layout}; this lab "
                    f"writes layout {PROMPT_VERSION} (the belief and turn number moved to the end of the prompt): "
                    "prepare its data again and retrain it for results that mean something")
        return None

    def check_scenario(self, scenario: Scenario) -> None:
        """A LabError naming the scenario when its reply grammar cannot be built for this model (nothing otherwise).

        `start` calls it for each game; an evaluation calls it for every scenario before its first game, so a
        broken grammar is one error up front rather than one errored episode per game."""
        if not self.grammar:
            return
        try:
            self.backend.check_grammar(self._grammar(scenario))
        except LabError as exc:
            raise LabError(f"scenario '{scenario.id}': {exc}") from None

    def start(self, view: PersuaderView, seed: int) -> None:
        self._seen = 0
        self.tracker = None
        self._phrasing = random.Random(seed)
        self.check_scenario(view.scenario)  # a grammar that cannot be built is named now, not at the first turn
        if self.belief_mode == "tracker":
            from engine.players.belief import BeliefTracker

            self.tracker = BeliefTracker(view.scenario, view.condition, view.revealed)

    def _ask(self, messages: list[dict[str, str]], view: PersuaderView) -> tuple[ChatResult, str]:
        """The model's answer and its reply text (a structured answer read back into the free-text format)."""
        self_belief = self.belief_mode == "self"
        spent = held_moves(view, fresh=self.fresh, conclude=self.conclude, disclose=self.disclose)
        if self.grammar:
            grammar = self._grammar(view.scenario, spent)
            result = self.backend.chat_grammar(messages, grammar, self.options, self.on_text)
            return result, result.text
        if self.structured:
            schema = reply_schema(view.scenario, self.reply, self_belief, spent)
            result = self.backend.chat_structured(messages, schema, self.options)
            text = json_reply_text(result.text, view.scenario, self.reply, self_belief)
            if self.on_text is not None:  # JSON arrives whole; the reader sees the reply as text
                self.on_text(text)
            return result, text
        if self.on_text is not None:
            result = self.backend.chat_stream(messages, self.on_text, self.options)
        else:
            result = self.backend.chat(messages, self.options)
        return result, result.text

    def _grammar(self, scenario: Scenario, spent: set[str] | None = None) -> str:
        return reply_grammar(scenario, self.reply, self.belief_mode == "self", self.options.max_tokens, spent or ())

    def act(self, view: PersuaderView) -> PersuaderTurn:
        belief: dict[str, Any] | None = None
        if self.tracker is not None:
            for exchange in view.history[self._seen :]:
                self.tracker.observe(exchange)
            self._seen = len(view.history)
            belief = self.tracker.to_dict()
        self_belief = self.belief_mode == "self"
        messages = messages_for_view(view, belief, self_belief, self.reply)
        first, text = self._ask(messages, view)
        results = [first]
        with_message = writes_message(self.reply)
        parsed = parse_reply(text, view.scenario, with_message)
        raw = first.text
        if not parsed.ok:
            sections = ", ".join(reply_sections(self.reply, self_belief))
            repair = messages + [
                {"role": "assistant", "content": first.text},
                {
                    "role": "user",
                    "content": f"Your reply could not be read: {parsed.error}. Write it again with the sections "
                    f"{sections}, each on its own line starting with its label. {MOVE_HELP}",
                },
            ]
            second, text = self._ask(repair, view)
            results.append(second)
            first_error = parsed.error
            parsed = parse_reply(text, view.scenario, with_message)
            raw = f"{first.text}\n\n[repair: {first_error}]\n\n{second.text}"
        if self_belief:
            belief = read_belief(parsed.belief, view.scenario)
        if with_message:
            message = parsed.message.strip() or text.strip() or "(no message)"
        else:  # the `moves` format: the message says exactly the moves, in the planner's words
            message = persuader_message(view.scenario, parsed.moves, self._phrasing) if parsed.ok else (
                text.strip() or "(no message)")
        usage = combine_usage(results)
        if len(results) > 1:
            usage["repaired"] = parsed.ok
        return PersuaderTurn(
            message=message,
            moves=parsed.moves if parsed.ok else [],
            reasoning=parsed.reasoning,
            belief=belief,
            counterfactual=read_counterfactual(parsed.counterfactual, view.scenario),
            raw=raw,
            parse_ok=parsed.ok,
            parse_error=parsed.error,
            usage=usage,
        )


# ----- reading the model's own belief and counterfactual back into the shared schemas ----------------------
_NUM = r"([01]?(?:\.\d+)?)"
_DIST = re.compile(rf"(\w+)\s+like\s+{_NUM}\s+neutral\s+{_NUM}\s+dislike\s+{_NUM}", re.IGNORECASE)
_SIGNED = re.compile(rf"(\w+)\s*[:=]?\s*([+-]?[01])\s*\(\s*{_NUM}\s*\)")
_CHOICE = re.compile(r"predicted choice\s*:?\s*(\w+)", re.IGNORECASE)
_PGOAL = re.compile(rf"P\(goal\)\s*:?\s*{_NUM}", re.IGNORECASE)
_LABELS = {1: "like", 0: "neutral", -1: "dislike"}


def _prob(text: str) -> float:
    try:
        return min(1.0, max(0.0, float(text)))
    except ValueError:
        return 0.0


def read_belief(text: str, scenario: Scenario) -> dict[str, Any] | None:
    """A BELIEF section (the `prompts.belief_text` format, or `cost -1 (0.8)`) as the belief schema; None if empty."""
    if not text:
        return None
    prefs: dict[str, dict[str, float]] = {}
    for attr, like, neutral, dislike in _DIST.findall(text):
        if attr in scenario.attribute_ids:
            prefs[attr] = {"like": _prob(like), "neutral": _prob(neutral), "dislike": _prob(dislike)}
    for attr, sign, p in _SIGNED.findall(text):
        if attr in scenario.attribute_ids and attr not in prefs:
            value, prob = int(sign), _prob(p)
            prefs[attr] = {label: prob if v == value else round((1 - prob) / 2, 3) for v, label in _LABELS.items()}
    belief: dict[str, Any] = {"preferences": prefs}
    m = _CHOICE.search(text)
    if m and m.group(1) in scenario.proposal_ids:
        belief["predicted_choice"] = m.group(1)
    m = _PGOAL.search(text)
    if m:
        belief["p_goal"] = _prob(m.group(1))
    return belief if prefs or len(belief) > 1 else None


_CF = re.compile(
    rf"^(?P<move>.*?)\s*->\s*P\(goal\)\s*{_NUM}\s*->\s*{_NUM}(?:\s*,\s*predicted choice\s+(?P<choice>\w+))?"
    r"(?:\s*;\s*alternatives:\s*(?P<alts>.*))?$",
    re.IGNORECASE | re.DOTALL,
)


def read_counterfactual(text: str, scenario: Scenario) -> dict[str, Any] | None:
    """A COUNTERFACTUAL section (the `prompts.counterfactual_text` format) as the schema; free text kept as `move`."""
    text = text.strip()
    if not text:
        return None
    m = _CF.match(text)
    if not m:
        return {"move": text}
    out: dict[str, Any] = {"move": m.group("move").strip(), "p_goal_before": _prob(m.group(2)), "p_goal_after": _prob(m.group(3))}
    if m.group("choice") in scenario.proposal_ids:
        out["predicted_choice"] = m.group("choice")
    alts = []
    for part in (m.group("alts") or "").split(","):
        am = re.match(rf"^\s*(.+?)\s+{_NUM}\s*$", part)
        if am:
            alts.append({"move": am.group(1), "p_goal": _prob(am.group(2))})
    out["alternatives"] = alts
    return out


# ----- specs ------------------------------------------------------------------------------------------------
def persuader_from_spec(spec: PlayerSpec) -> LLMPersuader:
    """`openai:gpt-4o?belief=self`, `gpt-4o-mini` and friends; the backend is made (and its key checked) here."""
    from engine.llm.catalog import resolve
    from engine.llm.specs import SETTINGS, make_backend, model_spec

    model = model_spec(spec)
    trained, layout = trained_record(model.model, model.adapter) if model.provider == "local" else (None, None)
    reply = model.options.get("reply") or trained or "full"
    reply_sections(reply)  # a bad reply format is named before a model loads
    asked = model.options.get("structured")
    structured = _flag("structured", asked, default=model.provider in ("openai", "anthropic", "local"))
    fresh = _flag("fresh", model.options.get("fresh"), default=True)
    backend = make_backend(model)
    if structured and asked is None and not (backend.structured_output or backend.grammar_output):
        from engine.llm.grammar import INSTALL_HINT

        print(f"note: {backend.describe()} replies as free text: valid moves by construction need {INSTALL_HINT}",
              file=sys.stderr)
        structured = False
    defaults = LOCAL_OPTIONS if model.provider == "local" else DEFAULT_OPTIONS
    name = str(spec.without(*SETTINGS)) if resolve(spec.kind) else None  # an alias plays under its own name
    belief = model.options.get("belief", "tracker")
    return LLMPersuader(backend, belief, model.generation(defaults), name, reply=reply, structured=structured,
                        trained_reply=trained, fresh=fresh, trained_layout=layout,
                        conclude=model.options.get("conclude", "any"), disclose=model.options.get("disclose", "any"))


def trained_record(path: str, adapter: str | None) -> tuple[str | None, int | None]:
    """The reply format and prompt layout `finetune` recorded for a local model: in its `+ADAPTER` folder, or in
    the folder itself when that is an adapter; (None, None) for a base model (nothing recorded)."""
    from engine.llm.embedded import EMBEDDED_ALIASES
    from engine.pipeline.training.runs import read_prompt_layout, read_reply_format

    folder = adapter or (None if path in EMBEDDED_ALIASES else path)
    return (read_reply_format(folder), read_prompt_layout(folder)) if folder else (None, None)


def _flag(option: str, value: str | None, default: bool) -> bool:
    """A spec's on/off option (`1`/`0`, `true`/`false`, `yes`/`no`); absent means `default`."""
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise LabError(f"option {option}={value}: write {option}=1 or {option}=0")


def register() -> None:
    from engine.llm.specs import OPTION_NAMES, PROVIDERS
    from engine.players.registry import register_persuader

    for provider, help in PROVIDERS.items():
        register_persuader(provider, persuader_from_spec, help, options=OPTION_NAMES, arguments=None)
