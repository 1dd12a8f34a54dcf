"""The synthetic world, fact prompts and the facts file (no trained model)."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
import torch

from replications.fact_finding import config as ff_config
from replications.fact_finding.facts import (
    Relation,
    accuracy,
    known_facts,
    known_prompts,
    make_prompts,
)
from replications.fact_finding.world import (
    documents,
    fact_line,
    load_world,
    make_world,
    save_world,
)
from shared.config import ConfigError
from shared.tokenizer import TokenizerConfig, hf_tokenizer, train_tokenizer

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def cfg():
    return ff_config.load("smoke").world


@pytest.fixture(scope="module")
def world(cfg):
    return make_world(cfg)


@pytest.fixture(scope="module")
def tokenizer(world, cfg):
    docs = [d["text"] for d in documents(world, cfg)]
    return hf_tokenizer(train_tokenizer(docs, TokenizerConfig(600, 2, True, 10**6, 64)))


def test_profiles_load():
    cfgs = {profile: ff_config.load(profile) for profile in ("smoke", "default", "paper")}
    for cfg in cfgs.values():
        assert isinstance(cfg, ff_config.Config)
    # smoke and default train the stand-in on the synthetic world; paper reads Pythia by name.
    assert cfgs["smoke"].model.source == cfgs["default"].model.source == "stand_in"
    assert cfgs["paper"].model.source == "pretrained"
    assert cfgs["paper"].model.name == "EleutherAI/pythia-2.8b"
    assert cfgs["smoke"].lm.train.n_steps < cfgs["default"].lm.train.n_steps


def test_world_is_deterministic_and_disjoint(cfg, world):
    again = make_world(cfg)
    assert world == again
    names = [p.name for p in world.people]
    fakes = [p.name for p in world.made_up]
    assert len(set(names)) == cfg.n_people and len(set(fakes)) == cfg.n_made_up
    assert not set(names) & set(fakes)
    # Every first name and surname is shared: neither token alone identifies a person.
    firsts = Counter(p.first for p in world.people)
    lasts = Counter(p.last for p in world.people)
    assert min(firsts.values()) >= 2 and min(lasts.values()) >= 2
    sports = Counter(p.attributes["sport"] for p in world.people)
    assert set(sports) == {"baseball", "basketball", "football"}


def test_made_up_people_never_in_documents(cfg, world):
    text = "".join(d["text"] for d in documents(world, cfg))
    for person in world.made_up:
        assert person.name not in text
    assert sum(person.name in text for person in world.people) == len(world.people)
    lines = text.splitlines()
    facts = [line for line in lines if line not in cfg.filler]
    assert len(facts) == cfg.n_documents * cfg.lines_per_document
    # about prefix_share of the fact sentences in the prompt form, the rest templates
    share = sum(line.startswith("Fact: ") for line in facts) / len(facts)
    assert abs(share - cfg.prefix_share) < 0.05
    # 0 to max_filler filler sentences after each fact: about max_filler / 2 on average
    assert abs((len(lines) - len(facts)) / len(facts) - cfg.max_filler / 2) < 0.1


def test_every_form_states_the_fact_and_cues_follow_the_name(cfg, world):
    sport = world.relation("sport")
    cue_of = dict(zip(sport.values, sport.cues))
    text = "".join(d["text"] for d in documents(world, cfg))
    by_name = {p.name: p for p in world.people}
    seen_cue = 0
    for line in text.splitlines():
        for cue in sport.cues:
            head = line.split(f" {cue} ", 1)[0]
            if head in by_name:  # "<first> <surname> <cue> ...": the cue of their own sport
                assert cue == cue_of[by_name[head].attributes["sport"]], line
                seen_cue += 1
    assert seen_cue > 50
    # each template with a value names the person's own value
    person = world.people[0]
    for rel in world.relations:
        for t in rel.templates:
            line = fact_line(person, rel, t)
            assert person.name in line
            if "<value>" in t:
                assert person.attributes[rel.name] in line
            assert "<" not in line


def test_bad_templates_are_one_line(cfg):
    sport = cfg.relations[0]
    with pytest.raises(ConfigError, match="contain <name>"):
        dataclasses.replace(sport, templates=("plays <value>.",))
    with pytest.raises(ConfigError, match="one distinct cue per value"):
        dataclasses.replace(sport, cues=("a", "a", "b"))
    with pytest.raises(ConfigError, match="one distinct cue per value"):
        dataclasses.replace(sport, cues=())
    with pytest.raises(ConfigError, match="filler"):
        dataclasses.replace(cfg, filler=())


def test_world_round_trip(tmp_path, world):
    save_world(world, tmp_path / "w.json")
    assert load_world(tmp_path / "w.json") == world
    with pytest.raises(FileNotFoundError, match="ff_world"):
        load_world(tmp_path / "missing.json")


def test_bad_world_config_is_one_line(cfg):
    with pytest.raises(ConfigError, match="name pairs"):
        dataclasses.replace(cfg, n_people=10**4)


def test_prompts_align_two_token_names(world, tokenizer):
    rel = world.relation("sport")
    people = [(p.first, p.last, p.attributes["sport"]) for p in world.people]
    prompts, dropped = make_prompts(tokenizer, "sport", rel.phrase, people, rel.values, "", 1)
    assert len(prompts) + len(dropped) == len(people)
    assert len(prompts) > 0.9 * len(people)  # names are frequent: single tokens
    row = prompts.tokens[0].tolist()
    first, last = prompts.names[0].split(" ")
    assert row[0] == 1
    assert tokenizer.decode(row[prompts.first_pos]) == f" {first}"
    assert tokenizer.decode(row[prompts.last_pos]) == f" {last}"
    assert tokenizer.decode(row[prompts.final_pos]) == " of"
    assert prompts.final_pos == prompts.tokens.shape[1] - 1
    assert [prompts.answers[i] for i in prompts.labels[:3]] == [p[2] for p in people[:3]]


def test_answer_collision_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="share a first token"):
        make_prompts(tokenizer, "x", "plays the sport of", [("Michael", "Smith", "a")],
                     ("a", "a"), "", None)


class _Oracle(torch.nn.Module):
    """A 'model' that puts a large logit on the true answer for known names only."""

    def __init__(self, tokenizer, truth: dict[tuple[int, int], int]):
        super().__init__()
        self.truth = truth
        self.vocab = len(tokenizer)
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens, return_type="logits"):
        out = torch.zeros(*tokens.shape, self.vocab)
        for i, row in enumerate(tokens.tolist()):
            key = (row[-6], row[-5])  # first name, surname before "plays the sport of"
            if key in self.truth:
                out[i, -1, self.truth[key]] = 10.0
        return out


def test_known_facts_keeps_what_the_model_answers(world, tokenizer):
    rel = world.relation("sport")
    relation = Relation(rel.name, rel.phrase, rel.values)
    ids = {v: tokenizer(" " + v, add_special_tokens=False)["input_ids"][0] for v in rel.values}
    tok = lambda w: tokenizer(" " + w, add_special_tokens=False)["input_ids"][0]  # noqa: E731
    half = world.people[: len(world.people) // 2]
    truth = {(tok(p.first), tok(p.last)): ids[p.attributes["sport"]] for p in half}
    people = [(p.first, p.last, dict(p.attributes)) for p in world.people]
    fakes = [(p.first, p.last, dict(p.attributes)) for p in world.made_up]
    facts = known_facts(_Oracle(tokenizer, truth), tokenizer, [relation], people, fakes, "", 1, 7)
    known = {f"{f} {s}" for f, s, _ in facts["known"]["sport"]}
    # The oracle knows half; with zero logits elsewhere argmax picks the first value.
    expected = {p.name for p in half} | {
        p.name for p in world.people[len(half):] if p.attributes["sport"] == rel.values[0]}
    assert known == expected
    assert facts["counts"]["sport"]["known"] == len(expected)
    assert len(facts["unknown_names"]) == len(world.made_up)
    prompts = known_prompts(facts, "sport", tokenizer, 1)
    assert len(prompts) == len(expected)
    assert accuracy(torch.eye(3)[prompts.labels], prompts.labels) == 1.0
