"""The cluster and workstation profiles: the DAG plans under each, GPU rules ask for the GPU."""

import re
import tomllib

import pytest

from tests.conftest import ROOT, run

pytestmark = pytest.mark.integration


def test_slurm_profile_plans_the_dag():
    """The SLURM executor plugin is installed and the profile is valid (no cluster needed for
    a dry run: Snakemake plans every job with the plugin's resource settings)."""
    res = run(["snakemake", "--profile", "profiles/slurm", "-n", "figures/", "--config",
               "profile=paper"], ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "This was a dry-run" in res.stdout + res.stderr


def test_workstation_profile_queues_gpu_rules():
    res = run(["snakemake", "--profile", "profiles/workstation", "-n", "figures/", "--config",
               "profile=paper"], ROOT, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert re.search(r"resources:.*\bgpu=1\b", out), "no paper-profile rule asks for the GPU"


def test_pyproject_lists_the_direct_requirements():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [line.split("#")[0].strip() for line in
            (ROOT / "env" / "requirements.in").read_text().splitlines()]
    assert pyproject["project"]["dependencies"] == [p for p in pins if p]
    assert pyproject["project"]["name"] not in ("shared", "replications")
