"""The paper profile's athlete table and entity facts: contents, and the loader's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from replications.fact_finding import config as ff_config
from replications.fact_finding import paper_data as P

pytestmark = pytest.mark.unit

PACKAGE = Path(P.__file__).resolve().parent
CFG = ff_config.load("paper")
ATHLETES = P.read_athletes(PACKAGE / CFG.paper_data.athletes)
ENTITIES = P.read_entities(PACKAGE / CFG.paper_data.entity_facts)


# ------------------------------------------------------------------------- the table itself

def test_table_size_and_balance():
    counts = P.table_summary(ATHLETES)
    assert len(ATHLETES) >= 330
    assert set(counts) == set(P.SPORTS)
    # Roughly balanced: every sport holds between a quarter and 40% of the table.
    assert all(0.25 <= c / len(ATHLETES) <= 0.40 for c in counts.values()), counts


def test_table_has_no_duplicates_and_valid_names():
    names = [a.name.lower() for a in ATHLETES]
    assert len(names) == len(set(names))
    assert all(a.sport in P.SPORTS for a in ATHLETES)
    assert all(len(a.name.split(" ")) == 2 for a in ATHLETES)
    # Well-known anchors, and no multi-sport professionals.
    sport = {a.name: a.sport for a in ATHLETES}
    assert sport["Michael Jordan"] == "basketball" and sport["Babe Ruth"] == "baseball"
    assert sport["Tom Brady"] == "football" and sport["George Brett"] == "baseball"
    assert sport["Tim Duncan"] == "basketball"
    assert not {"Bo Jackson", "Deion Sanders", "Jim Thorpe", "Danny Ainge"} & set(sport)


def test_entity_facts_follow_the_writeup():
    jordan = ENTITIES[0]
    assert jordan.name == "Michael Jordan" and len(jordan.facts) == 9
    assert {f.relation: f.answer for f in jordan.facts}["sport"] == " basketball"
    assert {f.relation: f.answer for f in jordan.facts}["team"] == " Chicago Bulls"
    assert 3 <= len(ENTITIES) <= 5 and all(len(e.facts) >= 4 for e in ENTITIES)
    P.check_entities(ENTITIES, ATHLETES, Path("entity_facts.yaml"))


def test_load_gives_what_known_facts_takes():
    table = P.load(CFG, PACKAGE)
    assert [r.name for r in table.relations] == ["sport"]
    assert table.relations[0].phrase == "plays the sport of"
    assert len(table.people) == len(ATHLETES)
    assert table.people[0] == (ATHLETES[0].first, ATHLETES[0].last, {"sport": ATHLETES[0].sport})
    assert len(table.made_up) == CFG.paper_data.n_made_up
    assert all(attrs == {} for *_, attrs in table.made_up)
    real = {(f, s) for f, s, _ in table.people}
    firsts, lasts = {f for f, _ in real}, {s for _, s in real}
    assert not {(f, s) for f, s, _ in table.made_up} & real
    assert all(f in firsts and s in lasts for f, s, _ in table.made_up)
    entity = table.entities[0]
    prefix = CFG.model.prompt_prefix
    assert entity["name"] == "Michael Jordan"
    assert entity["facts"][0] == {"relation": "sport",
                                  "prompt": f"{prefix}Fact: Michael Jordan plays the sport of",
                                  "answer": " basketball"}


def test_made_up_names_are_deterministic():
    a = P.made_up_names(ATHLETES, 50, seed=3)
    assert a == P.made_up_names(ATHLETES, 50, seed=3) and a == sorted(a)
    assert a != P.made_up_names(ATHLETES, 50, seed=4)
    small = [P.Athlete("Ann", "Lee", "baseball"), P.Athlete("Bo", "Kim", "football")]
    assert P.made_up_names(small, 2, 0) == [("Ann", "Kim"), ("Bo", "Lee")]
    with pytest.raises(P.PaperDataError, match="only 2 unused name pairs"):
        P.made_up_names(small, 3, 0)


# ----------------------------------------------------------------------------- loader errors

def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "athletes.csv"
    path.write_text(body)
    return path


@pytest.mark.parametrize("body, message", [
    ("name,sport\nBabe Ruth,baseball\n", "row 1: header must be first,last,sport"),
    ("first,last,sport\nBabe,Ruth,baseball\nLou,Gehrig,cricket\n",
     "row 3: sport 'cricket' is not one of"),
    ("first,last,sport\nBabe,Ruth\n", "row 2: expected 3 fields, got 2"),
    ("first,last,sport\nBabe,Ruth,baseball\nbabe,ruth,baseball\n", "row 3: babe ruth repeats row 2"),
    ("first,last,sport\nKen,Griffey Jr,baseball\n", "row 2: last name 'Griffey Jr' must be one"),
    ("first,last,sport\n,Ruth,baseball\n", "row 2: first name '' must be one word"),
    ("first,last,sport\nBabe,Ruth,baseball\n\n", "row 3: empty row"),
    ("first,last,sport\n", "no athletes"),
])
def test_bad_table_is_one_line_error(tmp_path, body, message):
    path = _csv(tmp_path, body)
    with pytest.raises(P.PaperDataError) as err:
        P.read_athletes(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="athlete table not found"):
        P.read_athletes(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="entity facts not found"):
        P.read_entities(tmp_path / "nope.yaml")


GOOD_FACT = "{relation: sport, prompt_suffix: plays the sport of, answer: ' baseball'}"


@pytest.mark.parametrize("body, message", [
    ("a: 1\n", "top level must be a non-empty list"),
    ("- {name: Babe Ruth}\n", "entry 1: expected keys name, facts"),
    (f"- {{name: Babe, facts: [{GOOD_FACT}]}}\n", "entry 1: name 'Babe' must be"),
    ("- {name: Babe Ruth, facts: []}\n", "entry 1 (Babe Ruth): facts must be a non-empty list"),
    ("- {name: Babe Ruth, facts: [{relation: Sport, prompt_suffix: x, answer: y}]}\n",
     "fact 1: relation 'Sport' must be snake_case"),
    ("- {name: Babe Ruth, facts: [{relation: sport, prompt_suffix: 'plays ', answer: y}]}\n",
     "fact 1: prompt_suffix must be text without"),
    ("- {name: Babe Ruth, facts: [{relation: sport, prompt_suffix: x, answer: ' '}]}\n",
     "fact 1: answer must be non-empty"),
    (f"- {{name: Babe Ruth, facts: [{GOOD_FACT}, {GOOD_FACT}]}}\n",
     "fact 2: relation 'sport' appears twice"),
    (f"- {{name: Babe Ruth, facts: [{GOOD_FACT}]}}\n- {{name: Babe Ruth, facts: [{GOOD_FACT}]}}\n",
     "entry 2: Babe Ruth appears twice"),
    ("- [unclosed\n", "invalid YAML"),
])
def test_bad_entities_are_one_line_errors(tmp_path, body, message):
    path = tmp_path / "entity_facts.yaml"
    path.write_text(body)
    with pytest.raises(P.PaperDataError) as err:
        P.read_entities(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_entity_must_agree_with_table(tmp_path):
    path = tmp_path / "entity_facts.yaml"
    path.write_text("- {name: Babe Ruth, facts: [{relation: sport, prompt_suffix: plays the "
                    "sport of, answer: ' football'}]}\n")
    with pytest.raises(P.PaperDataError, match="sport 'football' disagrees"):
        P.check_entities(P.read_entities(path), ATHLETES, path)
    path.write_text(f"- {{name: Nobody Known, facts: [{GOOD_FACT}]}}\n")
    with pytest.raises(P.PaperDataError, match="Nobody Known is not in the athlete table"):
        P.check_entities(P.read_entities(path), ATHLETES, path)
