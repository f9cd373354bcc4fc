"""Baselines: `random` with the menu options plays only what a grammar-held model could play."""

from __future__ import annotations

import pytest

from engine.errors import LabError
from engine.game.episode import play
from engine.pipeline.metrics import disclosures
from engine.players.registry import make_persuader
from engine.players.targets.rational import RationalTarget


def test_random_with_the_menu_options_plays_from_the_menu(business):
    held = make_persuader("random?conclude=stated&disclose=stated")
    assert held.name == "random?conclude=stated&disclose=stated"
    games = [play(business, held, RationalTarget(), seed=seed) for seed in range(60)]
    plain = [play(business, make_persuader("random"), RationalTarget(), seed=seed) for seed in range(60)]
    assert disclosures(plain)["ruled_out"] > 0  # left free, random discloses what the target's words ruled out
    assert disclosures(games)["made"] > 0 and disclosures(games)["ruled_out"] == 0
    for game in games:
        for before, turn in zip([None, *game.turns], game.turns, strict=False):
            if any(m.kind == "conclude" for m in turn.moves):  # only right after the target named the goal
                assert before is not None and any(st.kind == "choice" and st.subject == business.goal
                                                  for st in before.statements)
    with pytest.raises(LabError, match="disclose=maybe: unknown"):
        make_persuader("random?disclose=maybe")


def test_random_with_any_options_keeps_its_free_draw(business):
    """`any` is the default: the free draw of the stored `random` baselines, not the menu."""
    game = play(business, make_persuader("random"), RationalTarget(), seed=3)
    again = play(business, make_persuader("random?conclude=any&disclose=any"), RationalTarget(), seed=3)
    assert [t.moves for t in game.turns] == [t.moves for t in again.turns]
