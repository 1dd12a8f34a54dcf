"""The DAG's wiring: dvc.yaml in sync with the Snakefile, one-line config errors, lint, collect."""

from pathlib import Path

import pytest
import yaml

from shared import dvc_gen, pipeline
from shared.collect import destination
from tests.conftest import ROOT, run

pytestmark = pytest.mark.unit


def test_dvc_yaml_is_generated_from_the_registry():
    committed = (ROOT / "dvc.yaml").read_text()
    assert committed == dvc_gen.render(), "dvc.yaml drifted: run `python -m shared.dvc_gen`"


def test_dvc_stages_name_the_snakemake_targets():
    """Every figure Snakemake builds for `figures/` is a DVC plot, and nothing else is."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    res = run(["snakemake", "-n", "--quiet", "all", "--config", "profile=smoke",
               "--list-target-rules"], ROOT)
    assert res.returncode == 0, res.stderr
    for w in pipeline.WRITEUPS:
        assert f"{pipeline.PREFIX[w]}_all" in res.stdout
        assert dvc["stages"][w]["cmd"].endswith(f"-- {pipeline.PREFIX[w]}_all")
    dry = run(["snakemake", "-n", "figures/", "--config", "profile=smoke", "--forceall"], ROOT)
    assert dry.returncode == 0, dry.stderr
    built = {
        Path(p).name
        for line in dry.stdout.splitlines() if line.strip().startswith("output:")
        for p in line.split("output:")[1].split(",")
        if p.strip().endswith(".png") and "/figures/" in p
    }
    plots = {Path(p).name for p in dvc["plots"] if p != "figures/scorecard.png"}
    assert built == plots


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "profile=huge"], "config error: unknown profile 'huge'"),
        (["--config", "profle=smoke"], "config error: unknown --config key 'profle'"),
    ],
)
def test_bad_config_is_one_line_before_any_job(args, message):
    res = run(["snakemake", "-n", "figures/", *args], ROOT)
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if "error" in line.lower()]
    assert errors == [errors[0]] and message in errors[0], res.stderr


def test_bad_profile_value_is_named(tmp_path):
    """A wrong value in a profile file stops Snakemake with the file and key named."""
    from tests.conftest import copy_checkout

    repo = copy_checkout(tmp_path)
    smoke = repo / "replications/toy_models/config/smoke.yaml"
    smoke.write_text(smoke.read_text() + "\nseed: minus one\n")
    res = run(["snakemake", "-n", "figures/", "--config", "profile=smoke"], repo)
    assert res.returncode != 0
    assert "smoke.yaml.seed: expected an integer" in res.stderr, res.stderr


def test_lint_is_clean():
    res = run(["snakemake", "--lint"], ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr, res.stdout


def test_collect_destinations():
    out = Path("figures")
    assert destination(Path("results/smoke/toy_models/figures/a.png"), out, "smoke") == out / "toy_models/a.png"
    assert destination(Path("results/smoke/scorecard/scorecard.md"), out, "smoke") == out / "scorecard.md"
    with pytest.raises(ValueError):
        destination(Path("results/paper/toy_models/figures/a.png"), out, "smoke")
