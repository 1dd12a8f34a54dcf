"""The paper profile's facts: the athlete table and a few athletes' several facts (data/).

The write-up puts "Fact: <name> plays the sport of" to Pythia 2.8B for about 1,500 athletes who
play baseball, basketball or American football, keeps the two-token names (the effective model
reads first name + surname) that the model answers right, and studies Michael Jordan's nine
facts. This module reads and validates the repository's hand-written table
(`data/athletes.csv`: first,last,sport) and `data/entity_facts.yaml`, and turns them into what
`recall.known_facts` takes:

- people: (first, last, {"sport": sport}) for every athlete;
- made-up people: first-name / surname pairs from the table that are nobody's name (a
  deterministic sample of `paper_data.n_made_up`), with no attributes: the unknown names;
- entities: {"name", "facts": [{"relation", "prompt", "answer"}]} with the full prompt
  (`model.prompt_prefix` + "Fact: <name> <prompt_suffix>"); the answer is scored by its first
  token.

Bad input stops with a one-line `PaperDataError` naming the file and the row.
"""

from __future__ import annotations

import csv
import dataclasses
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from replications.fact_finding.facts import Relation
from shared.config import ConfigError

if TYPE_CHECKING:
    from replications.fact_finding.config import Config

SPORTS: tuple[str, ...] = ("baseball", "basketball", "football")
# The write-up's prompt: "Fact: Michael Jordan plays the sport of" -> " basketball".
SPORT = Relation(name="sport", phrase="plays the sport of", values=SPORTS)
COLUMNS: tuple[str, ...] = ("first", "last", "sport")
# One word per name part: letters with inner apostrophes or hyphens (O'Neal, Abdul-Jabbar).
NAME_PART = re.compile(r"[A-Za-z](?:[A-Za-z'-]*[A-Za-z])?")
RELATION_ID = re.compile(r"[a-z][a-z0-9_]*")

Person = tuple[str, str, dict[str, str]]


class PaperDataError(ConfigError):
    """A problem in the athlete table or the entity facts: one line, naming file and row."""


@dataclasses.dataclass(frozen=True)
class Athlete:
    first: str
    last: str
    sport: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


@dataclasses.dataclass(frozen=True)
class EntityFact:
    relation: str  # e.g. "team"
    prompt_suffix: str  # e.g. "plays for the team called the"
    answer: str  # the exact continuation, leading space included: " Chicago Bulls"


@dataclasses.dataclass(frozen=True)
class Entity:
    name: str
    facts: tuple[EntityFact, ...]

    def record(self, prefix: str) -> dict[str, Any]:
        """The facts.json "entity" block: full prompts (with the one-shot prefix) and answers."""
        return {"name": self.name, "facts": [
            {"relation": f.relation, "prompt": f"{prefix}Fact: {self.name} {f.prompt_suffix}",
             "answer": f.answer} for f in self.facts]}


@dataclasses.dataclass(frozen=True)
class PaperTable:
    """What `recall.known_facts` and the entity check take, in the paper profile."""

    relations: list[Relation]
    people: list[Person]
    made_up: list[Person]
    entities: list[dict[str, Any]]  # Entity.record(prefix) of each person in the YAML


# ---------------------------------------------------------------------------------------------
# Reading and validation.


def read_athletes(path: Path) -> tuple[Athlete, ...]:
    """Rows of `first,last,sport` (header first); every name and sport checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: athlete table not found")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as err:
        raise PaperDataError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") \
            from err
    if not rows or tuple(c.strip() for c in rows[0]) != COLUMNS:
        raise PaperDataError(f"{path}: row 1: header must be {','.join(COLUMNS)}")
    athletes: list[Athlete] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        where = f"{path}: row {line}"
        if not row or all(not c.strip() for c in row):
            raise PaperDataError(f"{where}: empty row")
        if len(row) != len(COLUMNS):
            raise PaperDataError(f"{where}: expected {len(COLUMNS)} fields, got {len(row)}")
        first, last, sport = (c.strip() for c in row)
        for part, value in (("first", first), ("last", last)):
            if not NAME_PART.fullmatch(value):
                raise PaperDataError(f"{where}: {part} name {value!r} must be one word of "
                                     "letters (inner ' or - allowed)")
        if sport not in SPORTS:
            raise PaperDataError(f"{where}: sport {sport!r} is not one of {list(SPORTS)}")
        athlete = Athlete(first, last, sport)
        key = athlete.name.lower()
        if key in seen:
            raise PaperDataError(f"{where}: {athlete.name} repeats row {seen[key]}")
        seen[key] = line
        athletes.append(athlete)
    if not athletes:
        raise PaperDataError(f"{path}: no athletes")
    return tuple(athletes)


def read_entities(path: Path) -> tuple[Entity, ...]:
    """The YAML list of {name, facts: [{relation, prompt_suffix, answer}]}, checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: entity facts not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise PaperDataError(f"{path}: invalid YAML ({str(err).splitlines()[0]})") from None
    except UnicodeDecodeError as err:
        raise PaperDataError(f"{path}: not UTF-8 text (byte {err.start})") from None
    if not isinstance(data, list) or not data:
        raise PaperDataError(f"{path}: top level must be a non-empty list of people")
    entities: list[Entity] = []
    names: set[str] = set()
    for i, item in enumerate(data):
        where = f"{path}: entry {i + 1}"
        if not isinstance(item, dict) or set(item) != {"name", "facts"}:
            raise PaperDataError(f"{where}: expected keys name, facts")
        name = item["name"]
        parts = name.split(" ") if isinstance(name, str) else []
        if len(parts) != 2 or not all(NAME_PART.fullmatch(p) for p in parts):
            raise PaperDataError(f"{where}: name {name!r} must be '<first> <last>'")
        if name in names:
            raise PaperDataError(f"{where}: {name} appears twice")
        names.add(name)
        facts_in = item["facts"]
        if not isinstance(facts_in, list) or not facts_in:
            raise PaperDataError(f"{where} ({name}): facts must be a non-empty list")
        facts: list[EntityFact] = []
        for j, fact in enumerate(facts_in):
            fwhere = f"{where} ({name}), fact {j + 1}"
            if not isinstance(fact, dict) or set(fact) != {"relation", "prompt_suffix", "answer"}:
                raise PaperDataError(f"{fwhere}: expected keys relation, prompt_suffix, answer")
            rel, suffix, answer = fact["relation"], fact["prompt_suffix"], fact["answer"]
            if not isinstance(rel, str) or not RELATION_ID.fullmatch(rel):
                raise PaperDataError(f"{fwhere}: relation {rel!r} must be snake_case")
            if rel in {f.relation for f in facts}:
                raise PaperDataError(f"{fwhere}: relation {rel!r} appears twice")
            # A trailing space would end the prompt on a bare-space token, unlike any text.
            if not isinstance(suffix, str) or not suffix.strip() or suffix != suffix.strip():
                raise PaperDataError(f"{fwhere}: prompt_suffix must be text without "
                                     "leading or trailing spaces")
            if not isinstance(answer, str) or not answer.strip():
                raise PaperDataError(f"{fwhere}: answer must be non-empty text")
            facts.append(EntityFact(rel, suffix, answer))
        entities.append(Entity(name, tuple(facts)))
    return tuple(entities)


def check_entities(entities: Sequence[Entity], athletes: Sequence[Athlete], path: Path) -> None:
    """Every entity is in the table, and its "sport" fact (if any) agrees with it."""
    sport = {a.name: a.sport for a in athletes}
    for e in entities:
        if e.name not in sport:
            raise PaperDataError(f"{path}: {e.name} is not in the athlete table")
        for f in e.facts:
            if f.relation == "sport" and f.answer.strip() != sport[e.name]:
                raise PaperDataError(f"{path}: {e.name}'s sport {f.answer.strip()!r} disagrees "
                                     f"with the athlete table ({sport[e.name]!r})")


# ---------------------------------------------------------------------------------------------
# What the analyses take.


def people(athletes: Sequence[Athlete]) -> list[Person]:
    return [(a.first, a.last, {"sport": a.sport}) for a in athletes]


def made_up_names(athletes: Sequence[Athlete], n: int, seed: int) -> list[tuple[str, str]]:
    """`n` first-name / surname pairs from the table that are nobody's name (sorted sample).

    Both tokens are real athletes' name tokens, so only the pairing is unknown: "Michael
    Brady". Raises when the table has fewer such pairs than `n`."""
    firsts = sorted({a.first for a in athletes})
    lasts = sorted({a.last for a in athletes})
    taken = {(a.first, a.last) for a in athletes}
    pool = [(f, s) for f in firsts for s in lasts if (f, s) not in taken]
    if n > len(pool):
        raise PaperDataError(f"paper_data.n_made_up is {n}, but the table gives only "
                             f"{len(pool)} unused name pairs")
    return sorted(random.Random(seed).sample(pool, n))


def table_summary(athletes: Sequence[Athlete]) -> dict[str, int]:
    """Athletes per sport (for logs and tests)."""
    counts = Counter(a.sport for a in athletes)
    return {s: counts.get(s, 0) for s in SPORTS}


def load(cfg: Config, root: Path) -> PaperTable:
    """The table and entity facts named by `cfg.paper_data` (paths relative to `root`)."""
    settings = cfg.paper_data
    athletes_path = Path(root) / settings.athletes
    entities_path = Path(root) / settings.entity_facts
    athletes = read_athletes(athletes_path)
    entities = read_entities(entities_path)
    check_entities(entities, athletes, entities_path)
    return PaperTable(
        relations=[SPORT],
        people=people(athletes),
        made_up=[(f, s, {}) for f, s in made_up_names(athletes, settings.n_made_up,
                                                      settings.seed)],
        entities=[e.record(cfg.model.prompt_prefix) for e in entities],
    )
