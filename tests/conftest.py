"""Shared fixtures: small scenarios and a throw-away store, so engine tests stay fast."""

from __future__ import annotations

import pytest

from engine.game.scenario import ScenarioLibrary
from engine.store import Store


@pytest.fixture
def library() -> ScenarioLibrary:
    return ScenarioLibrary()


@pytest.fixture
def business(library):
    return library.get("business_vacation")


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "sessions.db")
    yield s
    s.close()
