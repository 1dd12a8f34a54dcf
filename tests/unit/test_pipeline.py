"""The DAG's wiring: dvc.yaml in sync with the Snakefile, one-line config errors, lint, collect,
and the write-ups' manifests."""

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
    plots = {Path(p).name for p in dvc["plots"]
             if isinstance(p, str) and p != "figures/scorecard.png"}
    assert built == plots
    # Beside the figures, each training run's DVCLive log (shared.curves).
    logs = [next(iter(p)) for p in dvc["plots"] if isinstance(p, dict)]
    assert logs == [f"results/${{profile}}/{w}/curves/dvclive/{r}/plots/metrics"
                    for w in pipeline.WRITEUPS for r in pipeline.training_run_names(w)]
    assert "lm" in pipeline.training_run_names("fact_finding")
    assert "lm" not in pipeline.training_run_names("local_processing")


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_dvc_outputs_persist_and_stay_cached():
    """DVC must not delete what Snakemake builds incrementally before it runs a stage (else
    `dvc repro` / `dvc exp run` retrain everything), and the outputs stay in DVC's cache so
    `dvc push` / `dvc pull` share them."""
    for name, stage in _stages().items():
        for out in stage["outs"]:
            assert isinstance(out, dict) and len(out) == 1, (name, out)
            (opts,) = out.values()
            assert opts.get("persist") is True, name
            assert opts.get("cache", True) is True, name


def test_dvc_dependencies_are_tracked_files():
    """Every dependency is in git, so it exists in a fresh clone and in `dvc exp run --dry`'s
    temporary copy; no stage lists another stage's outputs (DVC fails a dry run on a dependency
    an upstream stage has not built, treeverse/dvc#9818)."""
    tracked = run(["git", "ls-files"], ROOT).stdout.splitlines()
    outs = {next(iter(out)) for stage in _stages().values() for out in stage["outs"]}
    for name, stage in _stages().items():
        for dep in stage["deps"]:
            assert not dep.startswith(("results/", "figures")), (name, dep)
            assert not any(dep == o or dep.startswith(f"{o}/") for o in outs), (name, dep)
            assert any(f == dep or f.startswith(f"{dep}/") for f in tracked), (name, dep)
        for pinned in ("Snakefile", "shared", "env/requirements.lock", "env/corpus.lock",
                       "env/corpus-downloads.txt", "profiles/default/config.yaml"):
            assert pinned in stage["deps"], (name, pinned)


def test_dvc_stages_depend_on_the_write_ups_they_read():
    stages = _stages()
    for w in pipeline.WRITEUPS:
        assert f"replications/{w}" in stages[w]["deps"]
        for used in pipeline.USES.get(w, ()):
            assert f"replications/{used}" in stages[w]["deps"], (w, used)
        for later in ("scorecard", "figures"):
            assert f"replications/{w}" in stages[later]["deps"], (later, w)
    assert "replications/fact_finding" in stages["local_processing"]["deps"]


def test_dvcignore_covers_caches_and_nothing_declared():
    """Caches written next to the code (Python's, the linters', the tests', Snakemake's) would
    change the hash of a dependency folder and mark every stage changed."""
    from fnmatch import fnmatch

    patterns = [line.strip() for line in (ROOT / ".dvcignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for cache in ("__pycache__/", ".mypy_cache/", ".ruff_cache/", ".pytest_cache/",
                  ".snakemake/"):
        assert cache in patterns, cache
    declared = [d for s in _stages().values() for d in s["deps"]] + [
        next(iter(o)) for s in _stages().values() for o in s["outs"]]
    for path in declared:
        for part in Path(path).parts:
            assert not any(fnmatch(part, p.rstrip("/")) for p in patterns), (path, part)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "profile=huge"], "config error: unknown profile 'huge'"),
        (["--config", "profle=smoke"], "config error: unknown --config key 'profle'"),
        (["--config", "seed=-1"], "config error: --config seed=-1: expected an integer >= 0"),
        (["--config", "profile=smoke-seed0"], "config error: unknown profile 'smoke-seed0'"),
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
    fig = Path("results/smoke/toy_models/figures/tms_geometry.png")
    assert destination(fig, out, "smoke") == out / "toy_models/tms_geometry.png"
    card = Path("results/smoke/scorecard/scorecard.md")
    assert destination(card, out, "smoke") == out / "scorecard.md"
    with pytest.raises(ValueError):
        destination(Path("results/paper/toy_models/figures/tms_geometry.png"), out, "smoke")
    with pytest.raises(ValueError):  # not declared in the manifest
        destination(Path("results/smoke/toy_models/figures/a.png"), out, "smoke")
    curves = Path("results/smoke/grid_challenge/curves/training_curves.pdf")
    assert destination(curves, out, "smoke") == out / "grid_challenge/training_curves.pdf"
    with pytest.raises(ValueError):
        destination(Path("results/smoke/grid_challenge/curves/other.png"), out, "smoke")


# ------------------------------------------------------------------------------ manifests

def test_every_write_up_has_a_manifest_and_the_same_layout():
    folders = sorted(p.name for p in (ROOT / "replications").iterdir()
                     if p.is_dir() and not p.name.startswith(("_", ".")))
    assert sorted(pipeline.WRITEUPS) == folders
    for w in pipeline.WRITEUPS:
        m = pipeline.manifest(w)
        d = ROOT / "replications" / w
        for name in ("writeup.yaml", "rules.smk", "README.md", "config/default.yaml",
                     "config/smoke.yaml", "config/paper.yaml", m.claims, "scripts/__init__.py"):
            assert (d / name).is_file(), f"replications/{w}/{name}"
        for fig in m.figures:
            assert (d / "captions" / f"{fig}.rst").is_file(), f"{w}: caption of {fig}"


def test_the_library_never_imports_a_write_up():
    for path in sorted((ROOT / "shared").rglob("*.py")):
        # importlib.metadata reads installed packages' files (the corpus); import_module and
        # spec loading are how a library would reach a write-up by name.
        text = path.read_text().replace("importlib.metadata", "")
        assert "importlib" not in text, path
        assert "from replications" not in text and "import replications" not in text, path


def test_manifest_errors_are_one_line(tmp_path):
    from shared.config import ConfigError

    bad = tmp_path / "x" / "writeup.yaml"
    bad.parent.mkdir()
    bad.write_text("name: y\ntitle: t\norder: 9\nprefix: x\nclaims: claims.yaml\nfigures: {}\n")
    with pytest.raises(ConfigError, match="not the folder's name"):
        pipeline._read(bad)
    with pytest.raises(ConfigError, match="does not declare"):
        pipeline.handoff("smoke", "steering", "fact_finding", "lm", True)


# What the model zoo builds for a stand-in (zoo_model in shared/common.smk), per artifact kind.
ZOO_FILES = {"lm": ["lm/model.safetensors", "lm/lm_config.json"],
             "tokens": ["tokenizer/tokens.safetensors"]}
HANDOFFS = [(reader, use) for reader, m in pipeline.manifests().items() for use in m.uses]


@pytest.mark.parametrize("reader, use", HANDOFFS,
                         ids=[f"{r}<-{u.writeup}.{u.artifact}" for r, u in HANDOFFS])
def test_every_handoff_is_its_owners_zoo_files(reader, use):
    """A declared hand-off gives the owner's zoo files where stand-ins are trained and a name
    (no files) in paper; the reader lists only stand-ins its owner trains."""
    for profile in ("smoke", "default"):
        got = pipeline.handoff(profile, reader, use.writeup, use.artifact, stand_in=True)
        assert got.inputs == [f"results/{profile}/{use.writeup}/{f}"
                              for f in ZOO_FILES[use.artifact]]
    assert pipeline.handoff("paper", reader, use.writeup, use.artifact, False).inputs == []
    assert set(pipeline.manifest(reader).models) <= set(pipeline.manifest(use.writeup).models)


def test_local_processing_reads_the_fact_finding_model_as_declared():
    """Local processing studies fact finding's model: its stand-in where fact finding trains one,
    the same published name in paper."""
    from replications.fact_finding import config as ff_config
    from replications.local_processing import config as local_config

    for profile in ("smoke", "default", "paper"):
        ff, local = ff_config.load(profile), local_config.load(profile)
        stand_in = ff.model.source == "stand_in"
        assert (local.data.source == "stand_in") == stand_in, profile
        if not stand_in:
            lm = pipeline.handoff(profile, "local_processing", "fact_finding", "lm", stand_in)
            assert lm.spec == ff.model.name
    # The stand-in it reads is the one fact finding's manifest names.
    assert pipeline.manifest("local_processing").models == pipeline.manifest("fact_finding").models
