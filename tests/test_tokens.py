"""Token counts: the shortcut (distinct lines and words counted once) equals whole-text encoding, exactly."""

from __future__ import annotations

import json

import pytest

from engine.errors import LabError
from engine.game.episode import play
from engine.pipeline.tokens import _encode_lengths, count_chats, count_texts, cuts_exactly, load_tokenizer, render_chats
from engine.players.persuaders.baselines import RandomPersuader, RevealAll
from engine.players.targets.rational import RationalTarget

TRICKY = [
    "",
    "plain words only",
    "line one\nline two\n\nafter a blank line\n  indented line\ttab\n",
    "trailing space \nnext\n leading space and numbers 0.25 12345 x1 y 22z",
    "it's they're we'll I'd  double  spaces\n\n\n<|im_start|>user\nhi<|im_end|>\n",
    "émigré naïve café — “quotes” \u00a0nbsp 日本語のテキスト\nüber straße",
    "disclose A.cost=+1; ask_preference comfort\nMESSAGE: Lisbon costs less.",
]


@pytest.fixture(scope="module")
def chats(library) -> list[list[dict]]:
    from engine.game.record import Episode
    from engine.pipeline.dataprep import turn_examples

    out = []
    for i, sid in enumerate(("business_vacation", "framework_choice")):
        for persuader, condition in ((RevealAll(), "hidden"), (RandomPersuader(), "revealed")):
            traj = play(library.get(sid), persuader, RationalTarget(), seed=i, condition=condition).to_trajectory()
            out += [e.messages for e in turn_examples(Episode.model_validate(json.loads(json.dumps(traj))))]
    return out


@pytest.fixture(scope="module")
def library():
    from engine.game.scenario import ScenarioLibrary

    return ScenarioLibrary()


def test_embedded_tokenizer_cuts_exactly():
    assert load_tokenizer(None).is_fast and cuts_exactly(None)
    assert load_tokenizer("embedded") is load_tokenizer("embedded")  # loaded once


def test_shortcut_equals_whole_text_encoding(chats):
    texts = render_chats(chats) + TRICKY
    assert count_texts(texts) == _encode_lengths(texts, None)
    tok = load_tokenizer(None)
    direct = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in TRICKY]
    assert count_texts(TRICKY) == direct


def test_chats_counted_as_the_trainer_renders_them(chats):
    tok = load_tokenizer(None)
    assert render_chats(chats) == [tok.apply_chat_template(c, tokenize=False) for c in chats]
    expected = [len(tok.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"]) for c in chats[:5]]
    assert count_chats(chats[:5]) == expected
    odd = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]]
    assert render_chats(odd) == [tok.apply_chat_template(c, tokenize=False) for c in odd]
    assert count_texts([]) == [] and count_chats([]) == []


def test_unknown_model_is_a_lab_error(tmp_path):
    with pytest.raises(LabError, match="tokenizer"):
        load_tokenizer(str(tmp_path / "no-such-model"))
