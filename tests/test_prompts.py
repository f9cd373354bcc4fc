"""The persuader's prompt layout: what changes every turn comes last, so a game's prompts extend one another."""

from __future__ import annotations

import json

from engine.game.episode import play
from engine.llm.base import Backend, ChatResult
from engine.pipeline.training import runs
from engine.players.persuaders.baselines import RevealAll
from engine.players.persuaders.llm import LLMPersuader, trained_record
from engine.players.prompts import PROMPT_VERSION, history_from_turns, persuader_messages, prompt_layout
from engine.players.targets.rational import RationalTarget


class _Asker(Backend):
    provider, model = "fake", "adapter"

    def chat(self, messages, options=None) -> ChatResult:
        return ChatResult("MOVES: ask_choice", 5, 5)


BELIEF = {"preferences": {"cost": {"like": 0.1, "neutral": 0.2, "dislike": 0.7}}, "predicted_choice": "B", "p_goal": 0.3}


def test_each_turn_starts_with_the_last_turns_prompt_up_to_its_belief_line(business):
    episode = play(business, RevealAll(), RationalTarget(), seed=2)
    assert len(episode.turns) >= 2
    texts = []
    for k in range(1, len(episode.turns) + 1):
        system, user = persuader_messages(business, k, history_from_turns(episode.turns[: k - 1]), BELIEF)
        texts.append(system["content"] + "\n\n" + user["content"])
        assert "Belief about the target" not in system["content"] and f"Turn {k}" in user["content"]
    for earlier, later in zip(texts, texts[1:], strict=False):
        kept = earlier.split("\nBelief about the target")[0]
        if kept.endswith("The conversation starts."):  # turn 1 has no dialogue yet
            kept = kept.removesuffix("The conversation starts.")
        assert later.startswith(kept)


def test_an_adapter_records_its_layout_and_one_trained_on_another_gets_a_warning(tmp_path, business):
    old_row = {"messages": [{"role": "system", "content": "You are X.\nTurn 3 of 8. Reply with MOVES."},
                            {"role": "user", "content": "..."}, {"role": "assistant", "content": "MOVES: ask_choice"}]}
    new_row = {"messages": [*persuader_messages(business, 3, [], BELIEF), {"role": "assistant", "content": "MOVES: ask_choice"}]}
    assert prompt_layout([old_row]) == 1 and prompt_layout([new_row]) == PROMPT_VERSION
    runs.write_reply_format(tmp_path, "moves", {"moves": 1}, prompt_layout([old_row]))
    assert trained_record(str(tmp_path), None) == ("moves", 1)
    (tmp_path / runs.REPLY_FILE).write_text(json.dumps({"reply_format": "compact"}))  # written before the field
    assert runs.read_prompt_layout(tmp_path) == 1
    warning = LLMPersuader(_Asker(), reply="compact", trained_reply="compact", trained_layout=1).format_warning
    assert warning and "trained on prompt layout 1" in warning and "retrain" in warning
    assert LLMPersuader(_Asker(), trained_layout=PROMPT_VERSION).format_warning is None



def test_a_public_number_of_known_facts_is_in_the_hidden_condition_prompt(business):
    from engine.game.interfaces import persuader_side, revealed_state
    from engine.game.mindgames import SCENARIOS_PATH
    from engine.game.scenario import load_file

    game = load_file(SCENARIOS_PATH)[0]
    line = "The target knows 5 of the 9 facts at the start; which ones is hidden."
    hidden = persuader_messages(persuader_side(game), 1, [], BELIEF)[0]["content"]
    told = persuader_messages(persuader_side(game), 1, [], BELIEF,
                              revealed_state(game, "revealed", "cooperative"))[0]["content"]
    assert line in hidden and line not in told  # told the very facts, the count says nothing more
    assert "facts at the start" not in persuader_messages(business, 1, [], BELIEF)[0]["content"]
    design = "Told every fact, the target would choose neither your proposal nor its first choice."
    assert design in hidden and design not in told
    assert design not in persuader_messages(business, 1, [], BELIEF)[0]["content"]
