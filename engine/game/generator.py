"""Seeded generator of *interesting* scenarios from domain templates.

Interesting means `rules.why_not_interesting` finds nothing: the target starts on a unique choice that is not the
goal, and some true disclosures make the goal its unique best. Draws that fail are skipped, never repaired.

The generator never repeats a held-out scenario: `signature` reduces a scenario to the game it defines
(domain, names, effects, preferences, initial knowledge, goal) and generation skips any signature found in the
held-out set, so evaluation scenarios are never seen in training.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.game.rules import why_not_interesting
from engine.game.scenario import DEFAULT_DIR, Attribute, Proposal, Scenario, fact_key, load_file

HELDOUT_PATH = DEFAULT_DIR / "heldout.jsonl"
HELDOUT_SEED = 20261129
HELDOUT_SIZE = 100


@dataclass(frozen=True)
class Domain:
    name: str
    title: str
    story: str  # {target} and {persuader} are filled in
    target_role: str
    persuader_role: str
    proposals: tuple[tuple[str, str], ...]  # (name, description)
    attributes: tuple[tuple[str, str, str, str], ...]  # (id, name, more, less)


DOMAINS: tuple[Domain, ...] = (
    Domain(
        "business_trip", "Team off-site",
        "The team has budget for one off-site this year. {Target} decides where it goes; {persuader} has done the research.",
        "the team lead", "the office manager",
        (("Lisbon", "a seaside retreat with workshops"), ("Berlin", "a city break with a hackathon"),
         ("the Alps", "a mountain lodge with hiking"), ("Copenhagen", "a design-week visit"),
         ("Edinburgh", "a festival week with team dinners")),
        (("cost", "cost", "costs more", "costs less"), ("bonding", "team bonding", "brings the team closer", "leaves people to themselves"),
         ("travel", "travel time", "means a longer journey", "means a shorter journey"),
         ("work", "focused work time", "leaves more time for work", "leaves less time for work"),
         ("weather", "good weather", "promises better weather", "risks worse weather")),
    ),
    Domain(
        "family_holiday", "Family holiday",
        "It is time to book the summer holiday. {Target} has the final word; {persuader} has compared the options.",
        "the parent who books", "the other parent",
        (("the beach resort", "all-inclusive by the sea"), ("the camping trip", "a week in the forest"),
         ("the city tour", "museums and markets"), ("the farm stay", "animals and open fields"),
         ("the lake cabin", "a quiet cabin with boats")),
        (("price", "price", "is more expensive", "is cheaper"), ("kids_fun", "fun for the kids", "is more fun for the kids", "is duller for the kids"),
         ("rest", "rest", "is more restful", "is more tiring"), ("culture", "culture", "offers more culture", "offers less culture"),
         ("travel", "travel time", "takes longer to reach", "is quicker to reach")),
    ),
    Domain(
        "city_budget", "City budget",
        "The council can fund one project this year. {Target} casts the deciding vote; {persuader} briefs them.",
        "the deciding councillor", "a policy adviser",
        (("bike lanes", "a network of protected bike lanes"), ("the park renovation", "a rebuilt central park"),
         ("road repairs", "resurfacing the main roads"), ("the new library", "a library with study rooms"),
         ("bus lines", "two new bus lines")),
        (("tax", "taxes", "raises taxes", "lowers taxes"), ("traffic", "traffic congestion", "adds to traffic congestion", "eases traffic congestion"),
         ("green", "green space", "adds green space", "takes away green space"), ("jobs", "local jobs", "creates local jobs", "costs local jobs"),
         ("noise", "noise", "makes the city noisier", "makes the city quieter")),
    ),
    Domain(
        "hiring", "Hiring decision",
        "One offer can go out this week. {Target} makes the call; {persuader} sat on every interview.",
        "the hiring manager", "a senior engineer",
        (("Ana", "a senior backend engineer"), ("Ben", "a generalist from a start-up"), ("Chloe", "a recent graduate"),
         ("Dev", "a contractor who knows the codebase"), ("Eva", "an engineer from a large company")),
        (("salary", "salary cost", "asks for a higher salary", "asks for a lower salary"), ("experience", "experience", "brings more experience", "brings less experience"),
         ("fit", "team fit", "fits the team better", "fits the team worse"), ("ramp", "ramp-up time", "needs longer to ramp up", "ramps up faster"),
         ("leadership", "leadership", "shows more leadership", "shows less leadership")),
    ),
    Domain(
        "apartment", "New apartment",
        "The lease ends next month. {Target} signs the new one; {persuader} has seen every flat.",
        "the tenant who signs", "their flatmate",
        (("the loft", "a converted loft downtown"), ("the garden flat", "ground floor with a garden"),
         ("the new build", "a flat in a new development"), ("the old town flat", "above a bakery"),
         ("the suburb house", "a small house out of town")),
        (("rent", "rent", "has higher rent", "has lower rent"), ("commute", "commute time", "means a longer commute", "means a shorter commute"),
         ("space", "space", "has more space", "has less space"), ("light", "daylight", "gets more daylight", "gets less daylight"),
         ("noise", "street noise", "is noisier", "is quieter")),
    ),
    Domain(
        "tech_stack", "Framework choice",
        "The team must pick a framework for the new product. {Target} decides; {persuader} built the prototypes.",
        "the CTO", "the tech lead",
        (("Django", "batteries-included Python"), ("Rails", "convention over configuration"), ("Next.js", "React on the server"),
         ("Phoenix", "Elixir with live views"), ("Spring", "the Java workhorse")),
        (("learning", "learning curve", "is harder to learn", "is easier to learn"), ("speed", "performance", "runs faster", "runs slower"),
         ("community", "community support", "has a bigger community", "has a smaller community"),
         ("hiring", "ease of hiring", "makes hiring easier", "makes hiring harder"), ("cost", "hosting cost", "costs more to host", "costs less to host")),
    ),
    Domain(
        "dinner", "Dinner party venue",
        "Friends are coming for a birthday dinner. {Target} books the table; {persuader} knows the places.",
        "the host", "a friend who eats out a lot",
        (("the trattoria", "a family-run Italian"), ("the sushi bar", "an omakase counter"), ("the steakhouse", "a grill by the river"),
         ("the vegan bistro", "seasonal plant-based plates"), ("the tapas bar", "small plates to share")),
        (("price", "price", "is pricier", "is cheaper"), ("quiet", "a quiet room", "is quieter", "is louder"),
         ("variety", "menu variety", "offers more variety", "offers less variety"), ("distance", "distance", "is further away", "is closer"),
         ("service", "service", "gives better service", "gives worse service")),
    ),
    Domain(
        "school", "School choice",
        "Their daughter starts secondary school next year. {Target} fills in the form; {persuader} visited the open days.",
        "a parent", "the other parent",
        (("Northfield", "a large comprehensive"), ("St Mary's", "a small church school"), ("the Academy", "a new science academy"),
         ("Riverside", "a school with strong arts"), ("Hilltop", "a grammar school across town")),
        (("results", "exam results", "gets better exam results", "gets worse exam results"), ("travel", "journey time", "is a longer journey", "is a shorter journey"),
         ("class", "class size", "has bigger classes", "has smaller classes"), ("clubs", "clubs and sport", "offers more clubs", "offers fewer clubs"),
         ("pressure", "academic pressure", "puts on more pressure", "puts on less pressure")),
    ),
)


def signature(s: Scenario) -> str:
    """What makes two scenarios the same game, whatever their ids or stories."""
    payload = {
        "domain": s.domain,
        "proposals": [p.name for p in s.proposals],
        "attributes": [a.id for a in s.attributes],
        "effects": s.effects,
        "preferences": s.preferences,
        "knows": sorted(fact_key(f) for f in s.target_knows),
        "goal": s.proposal(s.goal).name,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _draw(domain: Domain, rng: random.Random, sid: str, n_proposals: int, n_attributes: int) -> Scenario:
    picked = rng.sample(domain.proposals, n_proposals)
    attrs = rng.sample(domain.attributes, n_attributes)
    ids = "ABCDE"
    proposals = tuple(Proposal(ids[i], name, desc) for i, (name, desc) in enumerate(picked))
    attributes = tuple(Attribute(a, name, more, less) for a, name, more, less in attrs)
    effects = {p.id: {a.id: rng.choice((-1, 0, 1)) for a in attributes} for p in proposals}
    while True:
        prefs = {a.id: float(rng.choice((-1, 0, 1, 1, -1))) for a in attributes}
        if sum(1 for v in prefs.values() if v) >= 2:
            break
    facts = [(p.id, a.id) for p in proposals for a in attributes]
    knows = frozenset(rng.sample(facts, rng.randint(2, max(2, len(facts) // 3))))
    goal = rng.choice([p.id for p in proposals])
    target, persuader = domain.target_role, domain.persuader_role
    story = domain.story.format(Target=target[:1].upper() + target[1:], persuader=persuader)
    return Scenario(
        id=sid, title=domain.title, story=story, proposals=proposals, attributes=attributes, effects=effects,
        preferences=prefs, target_knows=knows, goal=goal, domain=domain.name,
        target_role=target, persuader_role=persuader,
    )


def generate(
    n: int,
    seed: int,
    *,
    prefix: str = "gen",
    exclude: set[str] | None = None,
    n_proposals: int = 3,
    n_attributes: int = 3,
) -> Iterator[Scenario]:
    """`n` interesting scenarios, the same ones for the same seed, none whose signature is in `exclude`."""
    rng = random.Random(f"scenarios:{seed}")
    exclude = set(heldout_signatures() if exclude is None else exclude)
    seen: set[str] = set()
    made = 0
    while made < n:
        domain = rng.choice(DOMAINS)
        s = _draw(domain, rng, f"{prefix}-{seed}-{made:05d}", n_proposals, n_attributes)
        if why_not_interesting(s) is not None:
            continue
        sig = signature(s)
        if sig in exclude or sig in seen:
            continue
        seen.add(sig)
        made += 1
        yield s


def heldout_signatures(path: Path = HELDOUT_PATH) -> set[str]:
    if not path.exists():
        return set()
    return {signature(s) for s in load_file(path)}


def make_heldout() -> list[Scenario]:
    """The fixed held-out set, as shipped in scenarios/heldout.jsonl (rebuilt only by a maintainer)."""
    return list(generate(HELDOUT_SIZE, HELDOUT_SEED, prefix="heldout", exclude=set()))
