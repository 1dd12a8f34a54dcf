"""Claims files and the scorecard: each status, lookups, and validation errors."""

import pytest

from shared.claims import (
    STATUSES,
    Check,
    evaluate,
    load_claims,
    lookup,
    scorecard_json,
    scorecard_markdown,
)
from shared.config import ConfigError
from shared.scorecard import main as scorecard_main
from shared.scorecard import plot_scorecard

pytestmark = pytest.mark.unit

CLAIMS = [
    dict(id="recovered", published="92%", metric="sae.loss_recovered",
         check=dict(op="approx", value=0.92, tol=0.05), profiles=["paper"]),
    dict(id="cliff", statement="a cliff at the true width", published="clear cliff",
         metric="sae.cliff", check=dict(op="at_least", value=0.2), profiles=["default", "paper"]),
    dict(id="absent", metric="nope.value", check=dict(op="between", value=0, high=2),
         profiles=["default"]),
]


def _with(claim_id: str, **changes) -> list[dict]:
    """CLAIMS with one claim's fields changed."""
    return [{**c, **changes} if c["id"] == claim_id else c for c in CLAIMS]


def test_statuses(claims_file):
    claims = load_claims(claims_file(CLAIMS))
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


def test_bad_claims(claims_file):
    with pytest.raises(ConfigError, match="unknown profile 'papr'"):
        load_claims(claims_file(_with("recovered", profiles=["papr"])))
    with pytest.raises(ConfigError, match="'roughly' is not one of"):
        load_claims(claims_file(_with("recovered", check=dict(op="roughly", value=0.9))))
    with pytest.raises(ConfigError, match="duplicate claim id 'recovered'"):
        load_claims(claims_file(_with("cliff", id="recovered")))


def test_scorecard_cli(tmp_path, claims_file):
    claims_file(CLAIMS)
    (tmp_path / "m.json").write_text('{"sae": {"loss_recovered": 0.9, "cliff": 0.1}}')
    scorecard_main([
        "--profile", "paper", "--writeup", "demo", str(tmp_path / "claims.yaml"),
        str(tmp_path / "m.json"), "--markdown", str(tmp_path / "s.md"),
        "--json", str(tmp_path / "s.json"), "--figure", str(tmp_path / "s.png"),
    ])
    assert "1 pass, 1 fail, 0 contradict the write-up, 0 missing, 1 not applicable" in (tmp_path / "s.md").read_text()
    assert (tmp_path / "s.png").stat().st_size > 5000 and (tmp_path / "s.pdf").exists()


@pytest.mark.parametrize(
    "check, inside, edge, outside, margin_inside",
    [
        (Check("approx", 1.0, 0.1, 0.0), 1.05, 1.1, 1.2, 0.05),
        (Check("approx", 1.0, 0.1, 0.0), 0.95, 0.9, 0.8, 0.05),
        (Check("at_least", 0.5, 0.1, 0.0), 0.6, 0.4, 0.3, 0.2),
        (Check("at_most", 0.5, 0.0, 0.0), 0.2, 0.5, 0.7, 0.3),
        (Check("between", 1.0, 0.0, 3.0), 1.5, 1.0, 0.5, 0.5),
        (Check("between", 1.0, 0.5, 3.0), 2.9, 3.5, 3.7, 0.6),
    ],
)
def test_margin_sign_follows_passes(check, inside, edge, outside, margin_inside):
    assert check.margin(inside) == pytest.approx(margin_inside) and check.passes(inside)
    assert check.margin(edge) == pytest.approx(0.0, abs=1e-12)
    assert check.margin(outside) < 0 and not check.passes(outside)


def test_margin_at_the_exact_edge_passes():
    for check, x in [(Check("at_least", 0.5, 0.0, 0.0), 0.5), (Check("at_most", 2.0, 0.5, 0.0), 2.5),
                     (Check("approx", 4.0, 0.0, 0.0), 4.0), (Check("between", 0.0, 0.0, 1.0), 1.0)]:
        assert check.margin(x) == 0.0 and check.passes(x)


CONTRA_REASON = "mean ablation worse than zero ablation"
MEAN_ABLATION = dict(
    id="mean_ablation", metric="sae.mean_minus_zero", check=dict(op="at_least", value=0.0),
    contradiction=dict(reason=CONTRA_REASON, op="at_most", value=-0.05), profiles=["default"])
CONTRA = [*CLAIMS, MEAN_ABLATION]


def _contradiction(**changes) -> list[dict]:
    """CONTRA with the mean-ablation claim's contradiction changed (a None value drops a key)."""
    new = {k: v for k, v in {**MEAN_ABLATION["contradiction"], **changes}.items() if v is not None}
    return [*CLAIMS, {**MEAN_ABLATION, "contradiction": new}]


def _contra(claims_file, value, profile="default"):
    path = claims_file(CONTRA)
    metrics = {"sae": {"cliff": 0.5}} if value is None else {"sae": {"mean_minus_zero": value}}
    return {r.claim.id: r for r in evaluate(load_claims(path), metrics, profile)}


def test_contradiction_status(claims_file):
    assert _contra(claims_file, 0.1)["mean_ablation"].status == "pass"
    # Fails the claim but not by enough to be the opposite result.
    assert _contra(claims_file, -0.01)["mean_ablation"].status == "fail"
    rows = _contra(claims_file, -0.2)
    row = rows["mean_ablation"]
    assert row.status == "contradicts" and row.margin == pytest.approx(-0.2)
    assert _contra(claims_file, -0.2, "paper")["mean_ablation"].status == "n/a"
    assert _contra(claims_file, None)["mean_ablation"].status == "missing"
    md = scorecard_markdown(list(rows.values()), "default", "prov")
    assert f"| contradicts: {CONTRA_REASON} |" in md
    assert "0 pass, 0 fail, 1 contradict the write-up, 2 missing, 1 not applicable" in md
    js = scorecard_json(list(rows.values()), "default")["demo"]
    assert js["contradicts"] == 1 and js["pass"] == 0
    assert js["claims"]["mean_ablation"]["reason"] == CONTRA_REASON
    assert js["claims"]["mean_ablation"]["margin"] == pytest.approx(-0.2)


def test_seed_variants_score_as_their_base_profile(claims_file):
    rows = _contra(claims_file, 0.1, "default-seed2")
    assert rows["mean_ablation"].status == "pass"
    assert rows["absent"].status == "missing" and rows["recovered"].status == "n/a"


def test_bad_contradictions(claims_file):
    with pytest.raises(ConfigError, match=r"contradiction: missing key 'reason'") as err:
        load_claims(claims_file(_contradiction(reason=None)))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"contradiction.op: 'below' is not one of"):
        load_claims(claims_file(_contradiction(op="below", value=None)))
    with pytest.raises(ConfigError, match="tol must be non-negative"):
        load_claims(claims_file(_contradiction(tol=-1)))


def test_scorecard_figure_with_every_status(claims_file):
    rows = list(_contra(claims_file, -0.2).values()) + list(_contra(claims_file, 0.1).values())
    fig = plot_scorecard(rows, "default")
    ax = fig.axes[0]
    assert "1 contradict" in ax.get_title(loc="left")
    # One bar per write-up; its segments add up to that write-up's claims, one segment per status.
    assert [t.get_text() for t in ax.get_yticklabels()] == sorted({r.writeup for r in rows})
    assert sum(p.get_width() for p in ax.patches) == len(rows)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"{s} ({sum(r.status == s for r in rows)})" for s in STATUSES]
