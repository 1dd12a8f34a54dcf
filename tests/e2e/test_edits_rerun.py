"""Edits rerun exactly what they affect, on a copy of the built smoke DAG: a config value
reruns the rules that declare its section (Snakemake params), a module reruns the rules whose
scripts import it (code inputs), and a `--config <write-up>=` override acts like the edit."""

import shutil
from pathlib import Path

import pytest

from tests.conftest import run

pytestmark = pytest.mark.e2e

# What a rerun of a write-up's figures or metrics always brings along downstream.
DOWNSTREAM = {"scorecard", "report_html", "figures"}


@pytest.fixture()
def repo(built, tmp_path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(built, dest, symlinks=True)
    return dest


def _planned(repo: Path, *extra: str) -> set[str]:
    """The rules `snakemake -n figures/` would run (its job-stats table)."""
    res = run(["snakemake", "-n", "figures/", "--config", "profile=smoke", *extra], repo)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = res.stdout + res.stderr
    if "Nothing to be done" in out:
        return set()
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0].splitlines()[3:]
    return {line.split()[0] for line in table if line.split() and line.split()[0] != "total"}


def test_a_config_edit_reruns_the_rules_that_read_its_section(repo):
    assert _planned(repo) == set()
    smoke = repo / "replications/caesar_cipher/config/smoke.yaml"
    smoke.write_text(smoke.read_text().replace("n_eval: 256", "n_eval: 200"))
    # caesar_train does not read `analysis`: its models stay.
    assert _planned(repo) == {"caesar_analyse", "caesar_figures", "caesar_metrics", *DOWNSTREAM}


def test_a_command_line_override_reruns_the_same_rules(repo):
    planned = _planned(repo, "caesar_cipher={analysis: {n_eval: 200}}")
    assert planned == {"caesar_analyse", "caesar_figures", "caesar_metrics", *DOWNSTREAM}
    res = run(["snakemake", "-n", "figures/", "--config", "profile=smoke",
               "caesar_cipher={analysis: {n_evals: 200}}"], repo)
    assert res.returncode != 0
    assert "--config caesar_cipher.analysis: unknown key 'n_evals'" in res.stderr


def test_a_code_edit_reruns_the_rules_whose_scripts_import_it(repo):
    plots = repo / "replications/grid_challenge/plots.py"
    plots.write_text(plots.read_text() + "\n# an edit\n")
    assert _planned(repo) == {"grid_figures", "report_html", "figures"}
    shared = repo / "shared/merge_metrics.py"
    shared.write_text(shared.read_text() + "\n# an edit\n")
    planned = _planned(repo)
    prefixes = ("caesar", "grid", "toy", "mono", "ff", "local", "steer", "emb")
    assert {f"{p}_metrics" for p in prefixes} <= planned
    assert not any(r.endswith(("_train", "_sae", "_lm")) for r in planned), planned
