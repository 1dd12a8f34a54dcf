"""A real SLURM run: the project's SLURM profile (profiles/slurm) submits a smoke job through
snakemake-executor-plugin-slurm to a single-node cluster (env/ci_slurm.sh, which .ci/run
starts). Skips, saying why, where no SLURM cluster answers."""

import shutil
import subprocess

import pytest

from tests.conftest import copy_checkout, run

pytestmark = pytest.mark.e2e


def _cluster_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return res.returncode == 0 and any(s in res.stdout for s in ("idle", "mixed"))


@pytest.mark.skipif(not _cluster_up(), reason="no SLURM cluster answers (bash env/ci_slurm.sh "
                                              "starts a single-node one)")
def test_a_job_runs_through_the_slurm_profile(tmp_path):
    repo = copy_checkout(tmp_path)
    target = "results/smoke/toy_models/tms/weights.safetensors"
    # The single-node cluster keeps no accounting, so job states come from squeue.
    res = run(["snakemake", "--profile", "profiles/slurm", "--jobs", "2", "--config",
               "profile=smoke", "--slurm-status-command", "squeue", "--", target], repo,
              timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "has been submitted with SLURM jobid" in out, out[-4000:]
    assert "Finished jobid: 0 (Rule: toy_tms_train)" in out, out[-4000:]
    assert (repo / target).is_file()
