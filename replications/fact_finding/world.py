"""A synthetic world of people with memorised attributes: the stand-in's athletes.

Pythia 2.8B knows the sports of about 1,500 real athletes. The smoke and default profiles need a
model that knows facts it cannot infer, so the DAG makes a world and mixes it into the corpus:

- every person has a two-word name built from a first-name pool and a surname pool; each first
  name and each surname is shared by many people, so neither token alone tells who it is (as
  "Michael" and "Jordan" do not), and the attribute must be recalled from the pair;
- every person gets one value per relation (sport, city, ...), drawn independently and
  uniformly, so no rule links names to attributes: only memorisation recalls them;
- some people are made up: their attributes are drawn the same way but never written anywhere,
  to show that recall is memorisation: on them the model can only guess.

The fact documents state each fact in many forms, so that the attribute is needed at different
distances from the name and, in some forms, by the very next token after the surname:

- the relation's prompt form, "Fact: Mara Quill plays the sport of tennis." (`prefix_share` of
  the lines: a prompt cut before the value asks the model for it);
- the relation's `templates`, e.g. "Mara Quill plays tennis.", "The sport that Mara Quill plays
  is tennis.", and cue templates "Mara Quill served ..." where `<cue>`, the word right after the
  full name, is the value's own cue word (`cues`, one per value). A model that has not looked
  the attribute up by the surname token cannot predict that word, which is the pressure to
  build the attribute on the surname, as Pythia does (post 3), and not only where it is read;
- filler sentences (`filler`, 0 to `max_filler` between two fact sentences), so that mentions
  are not back to back.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Mapping, Sequence

from replications.fact_finding.facts import Relation
from shared.config import check
from shared.io import write_json

FORMAT = "fact_finding.world/2"


@dataclasses.dataclass(frozen=True)
class RelationSpec(Relation):
    """One attribute: its prompt phrase ("plays the sport of"), its possible values and how
    often the corpus states it."""

    weight: float  # share of the fact lines that state this relation (relative)
    # other forms of the fact: "<name>" the full name, "<value>" the value, "<cue>" its cue word
    templates: tuple[str, ...]
    cues: tuple[str, ...] = ()  # one word per value (same order), used by "<cue>" templates

    def __post_init__(self) -> None:
        check(len(self.values) >= 2 and len(set(self.values)) == len(self.values),
              f"world.relations.{self.name}: values must be at least 2 distinct words")
        check(self.weight > 0, f"world.relations.{self.name}: weight must be positive")
        check(all("<name>" in t for t in self.templates),
              f"world.relations.{self.name}: every template must contain <name>")
        uses_cue = any("<cue>" in t for t in self.templates)
        check((not uses_cue or self.cues) and (not self.cues or (
            len(self.cues) == len(self.values) and len(set(self.cues)) == len(self.cues))),
              f"world.relations.{self.name}: '<cue>' templates need one distinct cue per value")

    def sentence(self, name: str, value: str, template: str) -> str:
        cue = self.cues[self.values.index(value)] if self.cues else ""
        return template.replace("<name>", name).replace("<value>", value).replace("<cue>", cue)


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """Size and make-up of the synthetic world and of its documents."""

    first_names: tuple[str, ...]
    surnames: tuple[str, ...]
    n_people: int
    n_made_up: int  # people held out: their facts are never in the corpus
    relations: tuple[RelationSpec, ...]  # the first one is the sport the analyses study
    n_documents: int
    lines_per_document: int
    prefix_share: float  # share of fact sentences in the prompt form ("Fact: <name> <phrase>")
    filler: tuple[str, ...]  # sentences about nobody, put between fact sentences
    max_filler: int  # 0 to this many filler sentences (uniform) after each fact sentence
    seed: int

    def __post_init__(self) -> None:
        check(len(set(self.first_names)) == len(self.first_names) >= 2,
              "world.first_names must hold at least 2 distinct names")
        check(len(set(self.surnames)) == len(self.surnames) >= 2,
              "world.surnames must hold at least 2 distinct names")
        n_pairs = len(self.first_names) * len(self.surnames)
        check(self.n_people >= 2 and self.n_made_up >= 1
              and self.n_people + self.n_made_up <= n_pairs,
              f"world: n_people + n_made_up must be at most {n_pairs} name pairs")
        check(len(self.relations) >= 1 and self.relations[0].name == "sport",
              "world.relations must start with 'sport'")
        check(len({r.name for r in self.relations}) == len(self.relations),
              "world.relations: names must be unique")
        check(self.n_documents >= 1 and self.lines_per_document >= 1,
              "world.n_documents and lines_per_document must be positive")
        check(0 <= self.prefix_share <= 1, "world.prefix_share must lie in [0, 1]")
        check(self.prefix_share == 1 or all(r.templates for r in self.relations),
              "world.relations: every relation needs templates when prefix_share < 1")
        check(self.max_filler >= 0 and (self.max_filler == 0 or len(self.filler) >= 1),
              "world.max_filler must be >= 0, and filler sentences are needed when it is > 0")


@dataclasses.dataclass(frozen=True)
class Person:
    first: str
    last: str
    attributes: Mapping[str, str]  # relation name -> value

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


@dataclasses.dataclass(frozen=True)
class World:
    """The people in the corpus, the made-up people (never in it) and the relations."""

    people: tuple[Person, ...]
    made_up: tuple[Person, ...]
    relations: tuple[RelationSpec, ...]

    def relation(self, name: str) -> RelationSpec:
        for r in self.relations:
            if r.name == name:
                return r
        raise KeyError(f"no relation '{name}' (known: {[r.name for r in self.relations]})")


def make_world(cfg: WorldConfig) -> World:
    """Draw the people and their attributes (deterministic for `cfg.seed`)."""
    rng = random.Random(cfg.seed)
    pairs = [(f, s) for f in cfg.first_names for s in cfg.surnames]
    rng.shuffle(pairs)
    everyone = [Person(f, s, {r.name: rng.choice(r.values) for r in cfg.relations})
                for f, s in pairs[: cfg.n_people + cfg.n_made_up]]
    people = tuple(sorted(everyone[: cfg.n_people], key=lambda p: (p.first, p.last)))
    made_up = tuple(sorted(everyone[cfg.n_people:], key=lambda p: (p.first, p.last)))
    return World(people, made_up, cfg.relations)


def fact_line(person: Person, relation: RelationSpec, template: str | None) -> str:
    """The fact in the prompt form (`template` None) or in one of the relation's templates."""
    value = person.attributes[relation.name]
    if template is None:
        return f"Fact: {person.name} {relation.phrase} {value}."
    return relation.sentence(person.name, value, template)


def documents(world: World, cfg: WorldConfig) -> list[dict[str, str]]:
    """Fact documents ({source, name, text}) for `shared.corpus` extra documents.

    Each fact sentence picks a person uniformly, a relation by weight and a form (the prompt
    form with probability `prefix_share`, else a template uniformly), so every fact of the
    world is seen about equally often within its relation; 0 to `max_filler` filler sentences
    follow each one."""
    rng = random.Random(cfg.seed + 1)
    weights = [r.weight for r in world.relations]
    docs = []
    for d in range(cfg.n_documents):
        lines = []
        for _ in range(cfg.lines_per_document):
            person = rng.choice(world.people)
            relation = rng.choices(world.relations, weights=weights)[0]
            prompt_form = rng.random() < cfg.prefix_share
            lines.append(fact_line(person, relation,
                                   None if prompt_form else rng.choice(relation.templates)))
            lines.extend(rng.choice(cfg.filler) for _ in range(rng.randint(0, cfg.max_filler)))
        docs.append({"source": "world_facts", "name": f"world_facts/{d:06d}",
                     "text": "\n".join(lines) + "\n"})
    return docs


def _person_dicts(people: Sequence[Person]) -> list[dict]:
    return [{"first": p.first, "last": p.last, "attributes": dict(p.attributes)} for p in people]


def _people(rows: Sequence[dict]) -> tuple[Person, ...]:
    return tuple(Person(p["first"], p["last"], p["attributes"]) for p in rows)


def save_world(world: World, path: Path) -> None:
    write_json(path, {
        "format": FORMAT,
        "relations": [dataclasses.asdict(r) for r in world.relations],
        "people": _person_dicts(world.people),
        "made_up": _person_dicts(world.made_up),
    })


def load_world(path: Path) -> World:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing world file (run the ff_world rule)")
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    relations = tuple(RelationSpec(r["name"], r["phrase"], tuple(r["values"]), r["weight"],
                                   tuple(r["templates"]), tuple(r["cues"]))
                      for r in data["relations"])
    return World(_people(data["people"]), _people(data["made_up"]), relations)


def write_documents(docs: Sequence[dict[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    tmp.replace(path)
