"""DVC on top of a Snakemake build of the smoke DAG: one command (`dvc commit --force`) makes
`dvc status` agree with Snakemake, after which `dvc repro`, `dvc exp run --dry` and `dvc exp run`
keep the results and retrain nothing."""

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.conftest import run

pytestmark = pytest.mark.e2e

UP_TO_DATE = "Data and pipelines are up to date."
NOTHING = "Nothing to be done"


def _ok(res) -> str:
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout + res.stderr


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def repo(built, tmp_path_factory) -> Path:
    """A git repository holding a copy of the built smoke DAG, params.yaml set to smoke (the
    shared `built` copy is left as it is)."""
    dest = tmp_path_factory.mktemp("dvc") / "repo"
    shutil.copytree(built, dest, symlinks=True)
    params = dest / "params.yaml"
    params.write_text(params.read_text().replace("profile: default", "profile: smoke"))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"]):
        _ok(run(cmd, dest))
    return dest


def test_dvc_commit_syncs_status_after_a_snakemake_build(repo):
    before = _ok(run(["dvc", "status"], repo))
    assert UP_TO_DATE not in before  # no dvc.lock yet: every stage reads as changed
    _ok(run(["dvc", "commit", "--force"], repo))
    assert (repo / "dvc.lock").is_file()
    assert UP_TO_DATE in _ok(run(["dvc", "status"], repo))
    out = _ok(run(["dvc", "repro"], repo))
    assert "Running stage" not in out and "didn't change" in out, out
    assert NOTHING in _ok(run(["snakemake", "-n", "figures/", "--config", "profile=smoke"], repo))


def test_dvc_exp_run_keeps_the_results(repo):
    _ok(run(["dvc", "commit", "--force"], repo))
    results = repo / "results/smoke/caesar_cipher"
    kept = _digest(results)
    dry = _ok(run(["dvc", "exp", "run", "--dry"], repo))
    assert "ERROR" not in dry, dry
    # A change DVC sees (a dependency folder's file) but Snakemake does not (no rule reads it):
    # the stages that list it rerun their Snakemake target, which has nothing to do. (The
    # README would not do: the report reads its Method section.)
    (repo / "replications/caesar_cipher/NOTES.txt").write_text("a note\n")
    out = _ok(run(["dvc", "exp", "run", "--set-param", "profile=smoke"], repo))
    assert "Running stage 'caesar_cipher'" in out and "Running stage 'toy_models'" not in out
    assert out.count(NOTHING) == 3, out  # caesar_cipher, scorecard, figures
    assert _digest(results) == kept
    assert UP_TO_DATE in _ok(run(["dvc", "status"], repo))


def test_dvc_exp_run_set_param_reruns_what_reads_it(repo):
    """`dvc exp run -S <config file>:<key>=<value>` edits one config value; Snakemake then reruns
    only the rules that declare its section (here the analysis, not the training)."""
    _ok(run(["dvc", "commit", "--force"], repo))
    models = repo / "results/smoke/caesar_cipher/models"
    kept = _digest(models)
    analysis = repo / "results/smoke/caesar_cipher/analysis/analysis.json"
    before = analysis.read_bytes()
    out = _ok(run(["dvc", "exp", "run", "--set-param", "profile=smoke", "--set-param",
                   "replications/caesar_cipher/config/smoke.yaml:analysis.n_eval=200"], repo))
    assert "Running stage 'caesar_cipher'" in out and "Running stage 'toy_models'" not in out
    assert "rule caesar_analyse:" in out and "rule caesar_train:" not in out, out
    assert _digest(models) == kept
    assert analysis.read_bytes() != before
