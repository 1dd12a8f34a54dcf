"""Seed sweeps: the robustness table from synthetic claims and per-seed metrics."""

import json

import pytest

from shared import robustness
from shared.claims import load_claims
from shared.config import ConfigError
from shared.pipeline import run_config

pytestmark = pytest.mark.unit

CLAIMS = [
    dict(id="steady", statement="holds on every seed", metric="a",
         check=dict(op="at_least", value=0.5), profiles=["smoke"]),
    dict(id="flaky", metric="b", check=dict(op="approx", value=2.0, tol=0.1),
         contradiction=dict(reason="far below", op="at_most", value=1.0), profiles=["smoke"]),
    dict(id="elsewhere", metric="a", check=dict(op="at_most", value=0.0), profiles=["paper"]),
    dict(id="gone", metric="c", check=dict(op="between", value=0, high=1), profiles=["smoke"]),
]
SEEDS = ["smoke", "smoke-seed1", "smoke-seed2"]
METRICS = [{"a": 1.0, "b": 2.05, "c": 0.5}, {"a": 0.7, "b": 0.5}, {"a": 0.5, "b": 2.5, "c": 1.0}]
MACHINE = {"cpu": "Test CPU", "cpu_count": 2, "torch": "2.x", "torch_threads": 1, "cuda": None,
           "date": "2026-01-01", "commit": "abc"}


@pytest.fixture
def table(claims_file):
    return robustness.build_table({"demo": (load_claims(claims_file(CLAIMS)), METRICS)},
                                  SEEDS)


def test_statuses_over_seeds(table):
    t = table["demo"]
    assert t["steady"]["status"] == "reproduced" and t["steady"]["holds"] == 3
    assert t["steady"]["margins"] == pytest.approx([0.5, 0.2, 0.0])
    assert t["flaky"]["status"] == "1/3"
    assert t["flaky"]["statuses"] == ["pass", "contradicts", "fail"]
    assert t["elsewhere"]["status"] == "n/a" and t["elsewhere"]["values"] == [1.0, 0.7, 0.5]
    assert t["gone"]["status"] == "2/3" and t["gone"]["values"] == [0.5, None, 1.0]
    assert robustness.counts(table) == {"reproduced": 1, "applicable": 3, "claims": 4}


def test_markdown_has_every_claim_with_a_value_per_seed(table):
    md = robustness.robustness_markdown("smoke", SEEDS, table, MACHINE, cores=2)
    assert "1 of 3 claims that apply to this profile hold on every seed" in md
    assert "| claim | check | seed 0 | seed 1 | seed 2 | holds | status |" in md
    assert ("| **steady**: holds on every seed | >= 0.5 | 1 (+0.5) | 0.7 (+0.2) | 0.5 (+0) "
            "| 3/3 | reproduced |") in md
    assert "0.5 (-1.4) (contradicts)" in md and "1/3; contradicts on seed 1: far below |" in md
    assert "| missing |" in md and "| 2/3 | 2/3 |" in md
    assert "Test CPU (2 cores, 2 given to the run)" in md and "commit abc" in md


def test_written_files(table, tmp_path):
    out = tmp_path / "out"
    paths = robustness.write_tables(out, "smoke", SEEDS, table, MACHINE)
    assert {p.relative_to(out).as_posix() for p in paths} == {
        "robustness_smoke.md", "robustness_smoke.json", "demo/robustness_smoke.md"}
    js = json.loads((out / "robustness_smoke.json").read_text())
    assert js["seeds"] == SEEDS and js["writeups"]["demo"]["flaky"]["holds"] == 1
    one = (out / "demo" / "robustness_smoke.md").read_text()
    assert one.startswith("# Robustness of demo — profile `smoke`, 3 seeds")
    assert "| **gone**:" in one


def test_cli_checks_its_arguments(tmp_path, capsys, claims_file):
    claims_file(CLAIMS)
    for i, m in enumerate(METRICS):
        (tmp_path / f"m{i}.json").write_text(json.dumps(m))
    base = ["--profile", "smoke", "--seeds", *SEEDS, "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit):
        robustness.main(base + ["--writeup", "demo", str(tmp_path / "claims.yaml"),
                                str(tmp_path / "m0.json")])
    assert "one metrics file per seed (3), got 2 paths" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        robustness.main(["--profile", "smoke", "--seeds", "smoke", "paper-seed1", "--out", "x",
                         "--writeup", "demo", "c", "m", "n"])
    assert "not all seeds of profile smoke" in capsys.readouterr().err
    robustness.main(base + ["--writeup", "demo", str(tmp_path / "claims.yaml"),
                            *(str(tmp_path / f"m{i}.json") for i in range(3))])
    assert "1 of 3 applicable claims hold on every seed" in capsys.readouterr().out


def test_run_config():
    cfg: dict = {}
    assert run_config(cfg).profile == "default" and cfg["robustness_seeds"] == 3
    assert run_config({"profile": "smoke", "seed": 2}).profile == "smoke-seed2"
    assert run_config({"profile": "smoke-seed2"}).profile == "smoke-seed2"
    for bad, msg in [({"seed": -1}, "seed=-1: expected an integer >= 0"),
                     ({"seed": "1"}, "expected an integer"),
                     ({"robustness_seeds": 0}, "robustness_seeds=0: expected an integer >= 1"),
                     ({"profile": "smoke-seed1", "seed": 1}, "give one"),
                     ({"seeds": 2}, "unknown --config key 'seeds'")]:
        with pytest.raises(ConfigError, match=msg) as err:
            run_config(dict(bad))
        assert "\n" not in str(err.value)
