"""The one scenario model: proposals, attributes, the facts, and the target's hidden state.

A scenario holds everything needed to play a game except who plays it. Loading from YAML or JSONL goes
through `Scenario.from_dict`, so every source gets the same validation and the same error messages, each
naming where the bad value came from.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from engine.errors import LabError
from engine.jsonl import json_lines, write_json_lines
from engine.paths import resolve, shipped_dir

Fact = tuple[str, str]
"""A fact is a (proposal id, attribute id) pair; written `P.attr` in prose and files."""

EFFECT_WORDS = {1: "increases", 0: "has no effect on", -1: "decreases"}
FULL_KNOWLEDGE_BEST = ("other",)  # the values of `Scenario.full_knowledge_best`


class ScenarioError(LabError):
    """A scenario file or value that cannot be used; the message names the file, line or field."""


def fact_key(fact: Fact) -> str:
    return f"{fact[0]}.{fact[1]}"


def parse_fact(text: str) -> Fact:
    proposal, sep, attribute = text.strip().partition(".")
    if not sep or not proposal or not attribute:
        raise ScenarioError(f"'{text}' is not a fact: write it as PROPOSAL.attribute, e.g. A.cost")
    return proposal, attribute


@dataclass(frozen=True)
class Proposal:
    id: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class Attribute:
    id: str
    name: str
    more: str = ""  # how "increases" reads in prose, e.g. "makes the trip more expensive"
    less: str = ""  # how "decreases" reads in prose

    def phrase(self, effect: int) -> str:
        if effect > 0:
            return self.more or f"increases {self.name}"
        if effect < 0:
            return self.less or f"decreases {self.name}"
        return f"has no effect on {self.name}"


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    story: str
    proposals: tuple[Proposal, ...]
    attributes: tuple[Attribute, ...]
    effects: dict[str, dict[str, int]]
    preferences: dict[str, float]
    target_knows: frozenset[Fact]
    goal: str
    domain: str = "general"
    target_role: str = "the decision maker"
    persuader_role: str = "the advisor"
    max_turns: int = 8
    # How many facts the target knows at the start, when the game makes that public (MindGames' rules: 5 of the
    # 9); which ones stays hidden. Persuaders keep it (`persuader_side`): the planner's belief puts its prior on
    # that many, the prompt states it. None: not public, any number is possible.
    target_knows_count: int | None = None
    # What the game's design makes public about the target's choice once it knows every fact. "other": a unique
    # best that is neither the goal nor its first choice, so telling everything loses (MindGames' generator makes
    # every game so). Persuaders keep it: the planner's belief is conditioned on it, the prompt states it.
    # None: nothing is public.
    full_knowledge_best: str | None = None
    source: str = field(default="", compare=False)

    # ----- derived views -------------------------------------------------------------------------
    @property
    def proposal_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.proposals)

    @property
    def attribute_ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.attributes)

    @property
    def facts(self) -> tuple[Fact, ...]:
        return tuple((p, a) for p in self.proposal_ids for a in self.attribute_ids)

    def proposal(self, pid: str) -> Proposal:
        for p in self.proposals:
            if p.id == pid:
                return p
        raise ScenarioError(f"scenario '{self.id}': unknown proposal '{pid}' (known: {', '.join(self.proposal_ids)})")

    def attribute(self, aid: str) -> Attribute:
        for a in self.attributes:
            if a.id == aid:
                return a
        raise ScenarioError(
            f"scenario '{self.id}': unknown attribute '{aid}' (known: {', '.join(self.attribute_ids)})"
        )

    def effect(self, fact: Fact) -> int:
        return self.effects[fact[0]][fact[1]]

    def fact_sentence(self, fact: Fact) -> str:
        """The fact as a plain sentence, e.g. 'Lisbon makes the trip more expensive'."""
        return f"{self.proposal(fact[0]).name} {self.attribute(fact[1]).phrase(self.effect(fact))}"

    # ----- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "domain": self.domain,
            "story": self.story,
            "target_role": self.target_role,
            "persuader_role": self.persuader_role,
            "proposals": [{"id": p.id, "name": p.name, "description": p.description} for p in self.proposals],
            "attributes": [{"id": a.id, "name": a.name, "more": a.more, "less": a.less} for a in self.attributes],
            "effects": {p: dict(row) for p, row in self.effects.items()},
            "preferences": dict(self.preferences),
            "target_knows": sorted(fact_key(f) for f in self.target_knows),
            "goal": self.goal,
            "max_turns": self.max_turns,
            **({"target_knows_count": self.target_knows_count} if self.target_knows_count is not None else {}),
            **({"full_knowledge_best": self.full_knowledge_best} if self.full_knowledge_best is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "scenario", check_interesting: bool = True) -> Scenario:
        """Build and validate; every error names `where` (a file and line) and the offending field.

        `check_interesting=False` accepts any well-formed scenario: a recorded game may have been played on one."""
        if not isinstance(data, dict):
            raise ScenarioError(f"{where}: a scenario must be a mapping, got {type(data).__name__}")
        sid = str(data.get("id") or "").strip()
        where = f"{where} (scenario '{sid}')" if sid else where

        def need(key: str) -> Any:
            if key not in data or data[key] in (None, "", [], {}):
                raise ScenarioError(f"{where}: missing field '{key}'")
            return data[key]

        if not sid:
            raise ScenarioError(f"{where}: missing field 'id'")
        proposals = tuple(_proposal(p, f"{where}: proposals[{i}]") for i, p in enumerate(need("proposals")))
        attributes = tuple(_attribute(a, f"{where}: attributes[{i}]") for i, a in enumerate(need("attributes")))
        pids = [p.id for p in proposals]
        aids = [a.id for a in attributes]
        if not 2 <= len(pids) <= 5:
            raise ScenarioError(f"{where}: proposals: need 2 to 5, got {len(pids)}")
        if not 2 <= len(aids) <= 6:
            raise ScenarioError(f"{where}: attributes: need 2 to 6, got {len(aids)}")
        for kind, ids in (("proposal", pids), ("attribute", aids)):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ScenarioError(f"{where}: duplicate {kind} id(s): {', '.join(dupes)}")
        if any("." in i for i in pids + aids):
            raise ScenarioError(f"{where}: ids may not contain '.'")

        raw_effects = need("effects")
        if not isinstance(raw_effects, dict):
            raise ScenarioError(f"{where}: effects must map proposal -> attribute -> -1|0|+1")
        effects: dict[str, dict[str, int]] = {}
        for pid, row in raw_effects.items():
            pid = str(pid)
            if pid not in pids:
                raise ScenarioError(f"{where}: effects: unknown proposal '{pid}' (known: {', '.join(pids)})")
            if not isinstance(row, dict):
                raise ScenarioError(f"{where}: effects.{pid} must map attribute -> -1|0|+1")
            effects[pid] = {}
            for aid, value in row.items():
                aid = str(aid)
                if aid not in aids:
                    raise ScenarioError(f"{where}: effects.{pid}: unknown attribute '{aid}' (known: {', '.join(aids)})")
                if value not in (-1, 0, 1) or isinstance(value, bool):
                    raise ScenarioError(f"{where}: effects.{pid}.{aid} must be -1, 0 or +1, got {value!r}")
                effects[pid][aid] = int(value)
        for pid in pids:
            missing = [a for a in aids if a not in effects.get(pid, {})]
            if missing:
                raise ScenarioError(f"{where}: effects.{pid}: missing attribute(s) {', '.join(missing)}")

        raw_prefs = need("preferences")
        if not isinstance(raw_prefs, dict):
            raise ScenarioError(f"{where}: preferences must map attribute -> weight")
        preferences: dict[str, float] = {}
        for aid, value in raw_prefs.items():
            if str(aid) not in aids:
                raise ScenarioError(f"{where}: preferences: unknown attribute '{aid}' (known: {', '.join(aids)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ScenarioError(f"{where}: preferences.{aid} must be a number, got {value!r}")
            preferences[str(aid)] = float(value)
        for aid in aids:
            preferences.setdefault(aid, 0.0)

        knows: set[Fact] = set()
        for item in data.get("target_knows") or []:
            try:
                fact = parse_fact(str(item))
            except ScenarioError as exc:
                raise ScenarioError(f"{where}: target_knows: {exc}") from None
            if fact[0] not in pids or fact[1] not in aids:
                raise ScenarioError(f"{where}: target_knows: unknown fact '{item}'")
            knows.add(fact)

        goal = str(need("goal"))
        if goal not in pids:
            raise ScenarioError(f"{where}: goal '{goal}' is not a proposal (known: {', '.join(pids)})")
        max_turns = data.get("max_turns", 8)
        if not isinstance(max_turns, int) or isinstance(max_turns, bool) or not 1 <= max_turns <= 50:
            raise ScenarioError(f"{where}: max_turns must be an integer from 1 to 50, got {max_turns!r}")
        count = data.get("target_knows_count")
        n_facts = len(pids) * len(aids)
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= n_facts):
            raise ScenarioError(f"{where}: target_knows_count must be an integer from 0 to {n_facts} (the facts), "
                                f"got {count!r}")
        if count is not None and knows and count != len(knows):
            raise ScenarioError(f"{where}: target_knows_count is {count} but target_knows lists {len(knows)} fact(s)")
        best_known = data.get("full_knowledge_best")
        if best_known not in (None, *FULL_KNOWLEDGE_BEST):
            raise ScenarioError(f"{where}: full_knowledge_best must be one of {', '.join(map(repr, FULL_KNOWLEDGE_BEST))} "
                                f"(or absent), got {best_known!r}")

        scenario = cls(
            id=sid,
            title=str(data.get("title") or sid),
            story=str(data.get("story") or ""),
            domain=str(data.get("domain") or "general"),
            target_role=str(data.get("target_role") or "the decision maker"),
            persuader_role=str(data.get("persuader_role") or "the advisor"),
            proposals=proposals,
            attributes=attributes,
            effects=effects,
            preferences=preferences,
            target_knows=frozenset(knows),
            goal=goal,
            max_turns=max_turns,
            target_knows_count=count,
            full_knowledge_best=best_known,
            source=where,
        )
        if check_interesting:
            from engine.game.rules import full_knowledge_problem, why_not_interesting

            problem = why_not_interesting(scenario) or full_knowledge_problem(scenario)
            if problem:
                raise ScenarioError(f"{where}: {problem}")
        return scenario


def _proposal(data: Any, where: str) -> Proposal:
    if isinstance(data, dict) and data.get("id"):
        return Proposal(str(data["id"]), str(data.get("name") or data["id"]), str(data.get("description") or ""))
    raise ScenarioError(f"{where}: a proposal needs at least an 'id'")


def _attribute(data: Any, where: str) -> Attribute:
    if isinstance(data, dict) and data.get("id"):
        return Attribute(
            str(data["id"]), str(data.get("name") or data["id"]), str(data.get("more") or ""), str(data.get("less") or "")
        )
    raise ScenarioError(f"{where}: an attribute needs at least an 'id'")


# ----- files ---------------------------------------------------------------------------------------
DEFAULT_DIR = shipped_dir("scenarios")


def load_file(path: str | Path) -> list[Scenario]:
    """Scenarios from one YAML file (a mapping, or a list of them) or one JSONL file (one a line)."""
    path = resolve(path)
    if not path.exists():
        raise ScenarioError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        return list(_from_jsonl(path))
    text = _utf8(path)
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        items = data if isinstance(data, list) else [data]
        return [_from_file(d, f"{path}[{i}]") for i, d in enumerate(items)]
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader that refuses duplicate keys
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if isinstance(data, list):
        return [_from_file(d, f"{path}[{i}]") for i, d in enumerate(data)]
    return [_from_file(data, str(path))]


def _from_jsonl(path: Path) -> Iterator[Scenario]:
    for lineno, data in json_lines(path, ScenarioError):
        yield _from_file(data, f"{path}:{lineno}")


def _utf8(path: Path) -> str:
    """The file's text; bytes that are not UTF-8 are named by line, not left to a UnicodeDecodeError."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x}): save the file as UTF-8") from None


FILE_KEYS = frozenset(f.name for f in fields(Scenario)) - {"source"}
"""The top-level keys a scenario file may use: a typo such as `preference:` must not be ignored silently."""


def _from_file(data: Any, where: str) -> Scenario:
    """`Scenario.from_dict` for an item of a scenario file, which may hold no key the model does not know."""
    if isinstance(data, dict):
        unknown = sorted(str(k) for k in data if k not in FILE_KEYS)
        if unknown:
            raise ScenarioError(
                f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(FILE_KEYS))})"
            )
    return Scenario.from_dict(data, where)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, except that a key given twice in one mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first on line {seen[key]})", key_node.start_mark
                )
            if isinstance(key, Hashable):
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def load_path(path: str | Path) -> list[Scenario]:
    """A file, or every scenario file in a directory (not recursing into held-out sets' neighbours)."""
    path = resolve(path)
    if path.is_dir():
        out: list[Scenario] = []
        for child in sorted(path.iterdir()):
            if child.suffix in (".yaml", ".yml"):
                out.extend(load_file(child))
        return out
    return load_file(path)


def write_jsonl(scenarios: Iterable[Scenario], path: str | Path) -> int:
    return write_json_lines(path, (s.to_dict() for s in scenarios))


class ScenarioLibrary:
    """Finds a scenario by id among the hand-written files, the held-out set, or a given file."""

    def __init__(self, root: str | Path = DEFAULT_DIR) -> None:
        self.root = Path(root)
        self._cache: dict[str, Scenario] | None = None

    def all(self) -> dict[str, Scenario]:
        if self._cache is None:
            found: dict[str, Scenario] = {}
            for s in load_path(self.root):
                found[s.id] = s
            heldout = self.root / "heldout.jsonl"
            if heldout.exists():
                for s in load_file(heldout):
                    found.setdefault(s.id, s)
            self._cache = found
        return self._cache

    def get(self, spec: str) -> Scenario:
        """`spec` is a scenario id, or a path to a file holding exactly one scenario (or `FILE#ID`)."""
        path, _, sid = spec.partition("#")
        if resolve(path).is_file():
            items = load_file(path)
            if sid:
                for s in items:
                    if s.id == sid:
                        return s
                raise ScenarioError(f"{path}: no scenario with id '{sid}'")
            if len(items) != 1:
                raise ScenarioError(f"{path} holds {len(items)} scenarios: name one as {path}#ID")
            return items[0]
        known = self.all()
        if spec in known:
            return known[spec]
        names = ", ".join(sorted(k for k in known if not k.startswith("heldout-"))[:12])
        raise ScenarioError(f"unknown scenario '{spec}' (try one of: {names}, or a file path)")
