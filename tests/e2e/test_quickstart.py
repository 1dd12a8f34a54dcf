"""The example (examples/quickstart.py, a jupytext script) runs against the smoke build: it
loads the stand-in LM and its SAE, prints features, and regenerates a figure byte for byte."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run

pytestmark = pytest.mark.e2e


def test_quickstart_runs_on_the_smoke_build(built, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(built, repo, symlinks=True)
    shutil.copy2(ROOT / "examples" / "quickstart.py", repo / "examples" / "quickstart.py")
    # This copy's own modules, not the checkout the editable install points at.
    res = subprocess.run([sys.executable, "examples/quickstart.py", "results/smoke"], cwd=repo,
                         env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = res.stdout
    assert "SAE on blocks." in out and "top features on the last token:" in out
    assert out.count("  feature ") == 5
    assert "top contexts" in out and "promotes" in out
    assert "identical to the DAG's figure" in out, out
    assert (repo / "examples/out/tms_geometry.pdf").is_file()


def test_quickstart_says_what_to_build_first(tmp_path):
    res = run([sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path)], ROOT)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith("error: ") and "not built" in res.stderr
