"""Claims files and the scorecard: each status, lookups, and validation errors."""

import pytest

from shared.claims import evaluate, load_claims, lookup, scorecard_json, scorecard_markdown
from shared.config import ConfigError
from shared.scorecard import main as scorecard_main

pytestmark = pytest.mark.unit

CLAIMS = """
writeup: demo
title: Demo write-up
claims:
  - id: recovered
    statement: loss recovered
    source: section 1
    published: "92%"
    metric: sae.loss_recovered
    check: {op: approx, value: 0.92, tol: 0.05}
    profiles: [paper]
  - id: cliff
    statement: a cliff at the true width
    source: section 2
    published: clear cliff
    metric: sae.cliff
    check: {op: at_least, value: 0.2}
    profiles: [default, paper]
  - id: absent
    statement: not computed
    source: section 3
    published: "1"
    metric: nope.value
    check: {op: between, value: 0, high: 2}
    profiles: [default]
"""


def test_statuses(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(CLAIMS)
    claims = load_claims(path)
    metrics = {"sae": {"loss_recovered": 0.8, "cliff": 0.5}}
    rows = {r.claim.id: r for r in evaluate(claims, metrics, "default")}
    assert rows["recovered"].status == "n/a" and rows["recovered"].reproduced == 0.8
    assert rows["cliff"].status == "pass"
    assert rows["absent"].status == "missing"
    paper = {r.claim.id: r.status for r in evaluate(claims, metrics, "paper")}
    assert paper["recovered"] == "fail"
    md = scorecard_markdown(list(rows.values()), "default", "prov")
    assert "| **cliff**: a cliff at the true width | clear cliff | 0.5 | >= 0.2 |" in md
    js = scorecard_json(list(rows.values()), "default")
    assert js["demo"]["pass"] == 1 and js["demo"]["missing"] == 1


def test_lookup():
    assert lookup({"a": {"b": 2}}, "a.b") == 2.0
    assert lookup({"a": {"b": "x"}}, "a.b") is None
    assert lookup({"a": 1}, "a.b") is None


def test_bad_claims(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(CLAIMS.replace("profiles: [paper]", "profiles: [papr]"))
    with pytest.raises(ConfigError, match="unknown profile 'papr'"):
        load_claims(path)
    path.write_text(CLAIMS.replace("op: approx", "op: roughly"))
    with pytest.raises(ConfigError, match="'roughly' is not one of"):
        load_claims(path)
    path.write_text(CLAIMS.replace("id: cliff", "id: recovered"))
    with pytest.raises(ConfigError, match="duplicate claim id 'recovered'"):
        load_claims(path)


def test_scorecard_cli(tmp_path):
    (tmp_path / "claims.yaml").write_text(CLAIMS)
    (tmp_path / "m.json").write_text('{"sae": {"loss_recovered": 0.9, "cliff": 0.1}}')
    scorecard_main([
        "--profile", "paper", "--writeup", "demo", str(tmp_path / "claims.yaml"),
        str(tmp_path / "m.json"), "--markdown", str(tmp_path / "s.md"),
        "--json", str(tmp_path / "s.json"), "--figure", str(tmp_path / "s.png"),
    ])
    assert "1 pass, 1 fail, 0 missing, 1 not applicable" in (tmp_path / "s.md").read_text()
    assert (tmp_path / "s.png").stat().st_size > 5000 and (tmp_path / "s.pdf").exists()
