"""The seed sweep on smoke: seed 0 from the built smoke DAG, seed 1 by the nested run."""

import json

import pytest

from shared import pipeline
from shared.claims import load_claims
from tests.conftest import run

pytestmark = pytest.mark.e2e


def test_two_seed_sweep_scores_every_claim_on_both_seeds(built):
    res = run(["snakemake", "--cores", "2", "robustness/", "--config", "profile=smoke",
               "robustness_seeds=2"], built, timeout=1800)
    nested = built / "results/smoke/logs/robustness/seed1.log"
    assert res.returncode == 0, (res.stdout[-3000:] + res.stderr[-4000:]
                                 + (nested.read_text()[-4000:] if nested.is_file() else ""))
    # Seed 0 was already built: only seed 1 and the tables ran.
    assert "rule scorecard:" not in res.stdout + res.stderr
    assert (built / "results/smoke-seed1/scorecard/scorecard.json").is_file()
    out = built / "robustness"
    table = json.loads((out / "robustness_smoke.json").read_text())
    assert table["seeds"] == ["smoke", "smoke-seed1"] and table["machine"]["cpu_count"]
    md = (out / "robustness_smoke.md").read_text()
    for w in pipeline.WRITEUPS:
        claims = load_claims(built / pipeline.claims_path(w)).claims
        assert set(table["writeups"][w]) == {c.id for c in claims}
        metrics = [json.loads((built / pipeline.metrics_path(s, w)).read_text())
                   for s in table["seeds"]]
        for c in claims:
            values = table["writeups"][w][c.id]["values"]
            # Both seeds write the same metrics (some paper-only ones exist on neither; a value
            # may be NaN on one seed where a weak stand-in leaves it unmeasurable).
            assert len(values) == 2, (w, c.id)
            assert has_key(metrics[0], c.metric) == has_key(metrics[1], c.metric), (w, c.id)
            assert f"| **{c.id}**:" in md
        assert (out / w / "robustness_smoke.md").is_file()
    assert sum(v is not None for claims in table["writeups"].values()
               for s in claims.values() for v in s["values"]) > 100
    # The seeds differ where a seed matters (the DAG ran again, not a copy of seed 0).
    assert any(s["values"][0] != s["values"][1]
               for claims in table["writeups"].values() for s in claims.values())
    # The report picks the sweep up: figures/ plans only the report (and the copy), which then
    # shows how many claims hold on both seeds; the shared build is settled again afterwards.
    dry = run(["snakemake", "-n", "figures/", "--config", "profile=smoke"], built)
    assert "report_html" in dry.stdout and "rule scorecard:" not in dry.stdout, dry.stdout[-2000:]
    res = run(["snakemake", "--cores", "2", "figures/", "--config", "profile=smoke"], built)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "holds on all 2 seeds" in (built / "figures/report.html").read_text()


def has_key(metrics: dict, dotted: str) -> bool:
    node = metrics
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
