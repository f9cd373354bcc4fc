"""Valid moves by construction: a local model's reply decoded under the turn's grammar (llguidance)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from engine.errors import LabError
from engine.game.episode import play
from engine.game.moves import parse_reply
from engine.llm.base import Backend, ChatResult, GenerationOptions
from engine.players.persuaders.llm import LLMPersuader
from engine.players.reply_schema import reply_grammar
from engine.players.targets.rational import RationalTarget

pytest.importorskip("llguidance")

GOOD = "REASONING: B is cheap.\nCOUNTERFACTUAL: none\nMOVES: disclose B.cost; ask_choice\nMESSAGE: B saves money."


@pytest.fixture(scope="module")
def compiler():
    from transformers import AutoTokenizer

    from engine.llm.embedded import resolve_model_path
    from engine.llm.grammar import GrammarCompiler

    return GrammarCompiler(AutoTokenizer.from_pretrained(resolve_model_path(None)))


def accepts(compiler, grammar: str, text: str) -> bool:
    """Whether the matcher takes every token of `text` and then the end of the reply."""
    matcher = compiler.matcher(grammar)
    ids = compiler.hf_tokenizer.encode(text, add_special_tokens=False) + [compiler.hf_tokenizer.eos_token_id]
    return all(matcher.consume_token(t) for t in ids) and not matcher.is_error()


def test_grammar_allows_only_the_scenarios_true_moves(compiler, business):
    grammar = reply_grammar(business)
    compiler.check(grammar)
    assert accepts(compiler, grammar, GOOD)
    assert accepts(compiler, grammar, GOOD.replace("disclose B.cost", "disclose B.cost=+1"))  # the true effect
    assert not accepts(compiler, grammar, GOOD.replace("disclose B.cost", "disclose B.cost=-1"))  # a lie
    assert not accepts(compiler, grammar, GOOD.replace("ask_choice", "teleport B"))  # not a move
    assert not accepts(compiler, grammar, GOOD.replace("disclose B.cost", "disclose D.cost"))  # not a proposal
    assert not accepts(compiler, grammar, GOOD.replace("MESSAGE", "MSG"))  # the sections are the format's
    compact = reply_grammar(business, "compact")
    assert accepts(compiler, compact, "MOVES: none\nMESSAGE: Hello.") and not accepts(compiler, compact, GOOD)
    moves = reply_grammar(business, "moves")  # MOVES alone: the player renders the message
    assert accepts(compiler, moves, "MOVES: disclose B.cost; ask_choice")
    assert not accepts(compiler, moves, "MOVES: none\nMESSAGE: Hello.")


def test_logits_mask_each_row_by_its_own_grammar(compiler, business):
    from engine.llm.grammar import GrammarLogits

    vocab = len(compiler.hf_tokenizer)
    scores = torch.zeros(2, vocab)
    logits = GrammarLogits([compiler.matcher(reply_grammar(business, "compact")), None])
    logits(torch.zeros(2, 3, dtype=torch.long), scores)
    allowed = torch.isfinite(scores[0]).nonzero().flatten().tolist()
    assert allowed and all("MOVES: ".startswith(compiler.hf_tokenizer.decode([t])) for t in allowed)
    assert torch.isfinite(scores[1]).all()  # a row without a grammar is left free


def test_a_grammar_that_cannot_be_built_is_one_clear_error(compiler):
    with pytest.raises(LabError, match="the reply grammar cannot be built: .*unknown name"):
        compiler.check("start: nothing_defined\n")


class GrammarBackend(Backend):
    """A backend that decodes under grammars: records them and answers a fixed reply."""

    provider, model, grammar_output = "fake", "grammar", True

    def __init__(self, reply: str = GOOD, broken: bool = False, fail_at: int | None = None) -> None:
        self.reply, self.broken, self.grammars, self.checked = reply, broken, [], []
        self.fail_at = fail_at  # the check (1, 2, ...) that fails, as one scenario's grammar would

    def check_grammar(self, grammar: str) -> None:
        self.checked.append(grammar)
        if self.broken or len(self.checked) == self.fail_at:
            raise LabError("the reply grammar cannot be built: bad lexeme")

    def chat_grammar(self, messages, grammar, options=None, on_text=None) -> ChatResult:
        self.grammars.append(grammar)
        return ChatResult(self.reply, 10, 5)

    def chat(self, messages, options=None) -> ChatResult:
        raise AssertionError("the grammar path was not taken")


def test_persuader_decodes_under_the_turns_grammar(business):
    backend = GrammarBackend()
    persuader = LLMPersuader(backend, options=GenerationOptions(max_tokens=120), structured=True)
    episode = play(replace(business, max_turns=1), persuader, RationalTarget())
    turn = episode.turns[0]
    assert turn.parse_ok and [m.text() for m in turn.moves] == ["disclose B.cost", "ask_choice"]
    assert backend.checked == backend.grammars == [reply_grammar(business, max_tokens=120)]


def test_the_grammar_leaves_out_what_the_target_has_answered_for_good(compiler, business):
    """`fresh` (the default): a stated preference is not asked again, a fact taken in is not disclosed again."""
    reply = "MOVES: ask_preference cost; disclose B.cost; ask_choice\nMESSAGE: B saves money."
    backend = GrammarBackend(reply)
    options = GenerationOptions(max_tokens=160)
    play(replace(business, max_turns=2), LLMPersuader(backend, options=options, structured=True), RationalTarget())
    first, second = backend.grammars
    assert first == reply_grammar(business, max_tokens=160)
    assert second == reply_grammar(business, max_tokens=160, spent={"ask_preference cost", "disclose B.cost",
                                                                    "ask_knowledge B.cost"})
    assert accepts(compiler, first, reply.replace("MOVES", "REASONING: x\nCOUNTERFACTUAL: y\nMOVES"))
    for spent in ("ask_preference cost", "disclose B.cost", "disclose B.cost=-1", "ask_knowledge B.cost"):
        assert not accepts(compiler, second, f"REASONING: x\nCOUNTERFACTUAL: y\nMOVES: {spent}\nMESSAGE: m"), spent
    assert accepts(compiler, second, "REASONING: x\nCOUNTERFACTUAL: y\nMOVES: disclose A.cost; ask_choice\nMESSAGE: m")
    backend = GrammarBackend(reply)  # fresh=0: every turn may make every move
    play(replace(business, max_turns=2), LLMPersuader(backend, options=options, structured=True, fresh=False),
         RationalTarget())
    assert backend.grammars == [first, first]


def test_spent_moves_come_from_what_the_target_said():
    from engine.game.interfaces import Exchange, Statement
    from engine.players.reply_schema import spent_moves

    said = [Statement("preference", "cost", -1), Statement("declined", "bonding"), Statement("knows", "A.cost", 0),
            Statement("knows", "B.fun", 1), Statement("accepted", "C.cost", 1), Statement("accepted", "A.fun", 0),
            Statement("choice", "B")]
    assert spent_moves([Exchange("m", [], "r", said, [])]) == {
        "ask_preference cost", "ask_knowledge A.cost", "ask_knowledge B.fun", "disclose B.fun",
        "ask_knowledge C.cost", "disclose C.cost"}  # a decline and a doubt stay open; so does ask_choice


def test_conclude_stated_offers_conclude_only_right_after_the_target_chose_the_goal(compiler, business):
    from engine.game.interfaces import Exchange, Statement
    from engine.players.reply_schema import goal_just_stated

    options = GenerationOptions(max_tokens=160)
    backend = GrammarBackend("MOVES: ask_choice\nMESSAGE: Which one?")
    persuader = LLMPersuader(backend, options=options, structured=True, conclude="stated")
    play(replace(business, max_turns=2), persuader, RationalTarget())
    held = reply_grammar(business, max_tokens=160, spent={"conclude"})
    assert backend.grammars == [held, held]  # the target named its first choice, never the goal (DESIGN.md 1)
    assert not accepts(compiler, held, "REASONING: x\nCOUNTERFACTUAL: y\nMOVES: conclude\nMESSAGE: m")
    assert accepts(compiler, reply_grammar(business, max_tokens=160), "REASONING: x\nCOUNTERFACTUAL: y\nMOVES: conclude\nMESSAGE: m")
    chose = [Exchange("m", [], "r", [Statement("choice", business.goal)], [])]
    assert goal_just_stated(chose, business.goal)
    assert not goal_just_stated([*chose, Exchange("m", [], "r", [], [])], business.goal)  # said before the last turn
    assert not goal_just_stated([], business.goal)
    with pytest.raises(LabError, match="conclude=stated holds back a move, which needs structured output"):
        LLMPersuader(backend, structured=False, conclude="stated")
    with pytest.raises(LabError, match="conclude=never: unknown"):
        LLMPersuader(backend, structured=True, conclude="never")


def test_disclose_stated_holds_back_disclosures_the_targets_own_words_rule_out(compiler, business):
    """Goal A; the target says it dislikes travel: A.travel=+1 would lower the goal, B.travel=-1 raise a rival."""
    from engine.game.interfaces import Statement
    from engine.players.reply_schema import harmful_disclosures

    said = [Statement("preference", "cost", -1), Statement("preference", "travel", -1)]
    assert harmful_disclosures(said, business) == {"disclose A.travel", "disclose B.travel"}  # cost: none hurts A
    assert harmful_disclosures(said, business, {"bonding": 1.0}) == {  # revealed: C.bonding=+1 raises a rival
        "disclose A.travel", "disclose B.travel", "disclose C.bonding"}
    assert harmful_disclosures([Statement("preference", "travel", 0), Statement("choice", "B")], business) == set()
    assert harmful_disclosures([], business) == set()

    options = GenerationOptions(max_tokens=160)
    backend = GrammarBackend("REASONING: x\nCOUNTERFACTUAL: y\nMOVES: ask_preference travel\nMESSAGE: Travel?")
    persuader = LLMPersuader(backend, options=options, structured=True, disclose="stated")
    assert persuader.name == "fake:grammar?disclose=stated"
    episode = play(replace(business, max_turns=2), persuader, RationalTarget())
    assert [st.text() for st in episode.turns[0].statements] == ["preference travel -1"]
    held = reply_grammar(business, max_tokens=160, spent={"ask_preference travel", "disclose A.travel", "disclose B.travel"})
    assert backend.grammars == [reply_grammar(business, max_tokens=160), held]
    assert not accepts(compiler, held, "REASONING: x\nCOUNTERFACTUAL: y\nMOVES: disclose A.travel=+1\nMESSAGE: m")
    assert accepts(compiler, held, "REASONING: x\nCOUNTERFACTUAL: y\nMOVES: disclose C.travel=+1\nMESSAGE: m")
    with pytest.raises(LabError, match="disclose=stated holds back a move, which needs structured output"):
        LLMPersuader(backend, structured=False, disclose="stated")
    with pytest.raises(LabError, match="disclose=none: unknown"):
        LLMPersuader(backend, structured=True, disclose="none")


def test_a_grammar_error_ends_the_game_before_any_turn(business):
    backend = GrammarBackend(broken=True)
    persuader = LLMPersuader(backend, structured=True)
    episode = play(business, persuader, RationalTarget())  # the loop ends a game whose player fails, with the reason
    assert episode.status == "errored" and episode.turns == []
    assert episode.error == "scenario 'business_vacation': the reply grammar cannot be built: bad lexeme"
    assert backend.grammars == []


def test_evaluation_checks_every_scenarios_grammar_before_any_game(store, capsys):
    """One scenario whose grammar cannot be built stops the run up front: one error naming it, nothing played."""
    from engine.cli import main
    from engine.pipeline.evaluation import EvalConfig, evaluate, load_scenarios
    from engine.players.registry import register_persuader

    backends: list[GrammarBackend] = []

    def broken_third(_spec):
        backends.append(GrammarBackend(fail_at=3))
        return LLMPersuader(backends[-1], structured=True)

    register_persuader("test-grammar-third", broken_third, "test only")
    third = load_scenarios("scenarios/heldout.jsonl")[2].id
    config = EvalConfig(model="test-grammar-third", num_eval=5, condition="both")
    with pytest.raises(LabError, match=rf"^scenario '{third}': the reply grammar cannot be built: bad lexeme$"):
        evaluate(store, config, name="broken")
    assert len(backends[0].checked) == 3 and backends[0].grammars == []  # checked in order, no turn decoded
    assert store.find_eval_run("broken") is None and store.run_sessions("broken") == []

    db = str(store.path)  # compare checks every model before playing the first: reveal-all plays no game either
    assert main(["compare", "--db", db, "--models", "reveal-all", "test-grammar-third", "--num-eval", "4"]) == 2
    assert f"scenario '{third}': the reply grammar cannot be built" in capsys.readouterr().err
    assert store.conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0


def test_free_text_backend_refuses_structured():
    class Plain(GrammarBackend):
        grammar_output = False

    with pytest.raises(LabError, match="no structured output"):
        LLMPersuader(Plain(), structured=True)


@pytest.mark.slow
def test_embedded_model_replies_under_the_grammar_with_no_repair(business, library):
    """The untrained embedded model, a few tokens: its reply parses at once, with only the scenario's moves."""
    from engine.players.registry import make_persuader

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        persuader = make_persuader("local:embedded?reply=compact&max_tokens=32&temperature=0&engine=transformers")
        assert persuader.grammar
        episode = play(replace(business, max_turns=1), persuader, RationalTarget())
        other = library.get("family_holiday")  # two scenarios in one batched generate call
        grammars = [reply_grammar(s, "compact", max_tokens=24) for s in (business, other)]
        prompt = [{"role": "user", "content": "Persuade me."}]
        results = persuader.backend._generate([prompt, prompt], GenerationOptions(24, 0.0), grammars)
        pieces: list[str] = []
        streamed = persuader.backend.chat_grammar(prompt, grammars[1], GenerationOptions(24, 0.0), pieces.append)
    finally:
        torch.set_num_threads(threads)
    turn = episode.turns[0]
    assert turn.parse_ok and "calls" not in turn.usage and turn.usage["output_tokens"] <= 32
    assert turn.raw.startswith("MOVES: ") and "\nMESSAGE: " in turn.raw
    for result, scenario in zip(results, (business, other), strict=True):
        assert parse_reply(result.text, scenario).ok, result.text
    assert "".join(pieces).strip() == streamed.text == results[1].text  # streamed under the grammar, same reply
