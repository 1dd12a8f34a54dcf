"""The whole smoke DAG, end to end, in a copy of the checkout (as a fresh clone would run it;
the `built` fixture is in tests/e2e/conftest.py)."""

import pytest

from shared import pipeline
from shared.figures import read_png_provenance
from tests.conftest import run

pytestmark = pytest.mark.e2e


def test_every_figure_and_the_scorecard_exist(built):
    for w in pipeline.WRITEUPS:
        for name in pipeline.figures(w):
            for ext in ("png", "pdf"):
                path = built / "figures" / w / f"{name}.{ext}"
                assert path.is_file() and path.stat().st_size > 2000, path
            assert "profile=smoke" in read_png_provenance(built / "figures" / w / f"{name}.png")
    card = (built / "figures" / "scorecard.md").read_text()
    assert "profile `smoke`" in card
    for w in pipeline.WRITEUPS:
        assert f"## {w}" in card
    assert (built / "figures" / "scorecard.png").is_file()
    assert "| missing |" not in card, card


def test_rerun_has_nothing_to_do(built):
    res = run(["snakemake", "-n", "figures/", "--config", "profile=smoke"], built)
    assert res.returncode == 0
    assert "Nothing to be done" in res.stdout + res.stderr, res.stdout[-2000:]


def test_one_figure_target_and_report(built):
    w = pipeline.WRITEUPS[0]
    name = next(iter(pipeline.figures(w)))
    target = f"figures/{w}/{name}.png"
    (built / target).unlink()
    res = run(["snakemake", "--cores", "1", target, "--config", "profile=smoke"], built)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (built / target).is_file()
    res = run(["snakemake", "--report", "report.html", "--config", "profile=smoke"], built)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (built / "report.html").stat().st_size > 50_000
