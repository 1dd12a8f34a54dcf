"""The smoke DAG, built once per session in a copy of the checkout (as a fresh clone would run
it) and shared by every e2e test file: building it takes minutes."""

from pathlib import Path

import pytest

from tests.conftest import copy_checkout, run


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    """A copy of the checkout (as a fresh clone would be) with `figures/` built on smoke; the
    seed sweep reuses it as its seed 0."""
    repo = copy_checkout(tmp_path_factory.mktemp("clone"))
    res = run(["snakemake", "--cores", "2", "figures/", "--config", "profile=smoke"], repo,
              timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    return repo
