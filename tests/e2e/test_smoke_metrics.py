"""Regression guard: the smoke DAG's metrics and claim statuses match the pinned ones
(tests/e2e/smoke_metrics.yaml, with its tolerances), so a change that moves a result is seen.
What is pinned, what is left out and why, and how to re-pin: the pin file's header and
tests/e2e/pin_smoke_metrics.py."""

import pytest

from tests.e2e import pin_smoke_metrics as guard

pytestmark = pytest.mark.e2e


def test_pin_file_covers_every_writeup():
    # Checked without the DAG, so a write-up added without re-pinning fails in seconds here too.
    pin = guard.load_pin()
    pinned = {k.split(":", 1)[0] for k in pin.values}
    scored = {k.split(":", 1)[1].split(".", 1)[0] for k in pin.values if k.startswith("scorecard:")}
    for w in guard.pipeline.WRITEUPS:
        assert w in pinned and w in scored, (
            f"{w} has no pinned smoke metrics; build the smoke DAG and re-pin: "
            + guard.REPIN.format(results="results/smoke"))


def test_smoke_metrics_match_the_pin(built):
    results = built / "results" / guard.PROFILE
    diffs = guard.compare(guard.load_pin(), guard.collect(results))
    assert not diffs, guard.report(diffs, str(results))
