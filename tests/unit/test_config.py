"""Config loading: every kind of bad value gives a one-line ConfigError naming the key."""

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from shared.config import (
    ConfigError,
    base_profile,
    build,
    check,
    check_profile,
    config_hash,
    load_profile,
    seed_offset,
    shift_seeds,
)

pytestmark = pytest.mark.unit


@dataclasses.dataclass(frozen=True)
class Inner:
    width: int
    lrs: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class Outer:
    seed: int
    mode: Literal["a", "b"]
    inner: Inner

    def __post_init__(self) -> None:
        check(self.seed >= 0, "seed must be non-negative")


GOOD = {"seed": 1, "mode": "a", "inner": {"width": 4, "lrs": [1e-3, "1e-4"]}}


def test_build_good():
    cfg = build(Outer, GOOD)
    assert cfg.inner.lrs == (1e-3, 1e-4)
    assert config_hash(cfg) == config_hash(build(Outer, GOOD))


@pytest.mark.parametrize(
    "patch, fragment",
    [
        ({"sed": 1}, "unknown key 'sed'"),
        ({"inner": {"width": 4, "lrs": [1.0], "depth": 2}}, "unknown key 'depth'"),
        ({"seed": "one"}, "config.seed: expected an integer"),
        ({"seed": True}, "config.seed: expected an integer"),
        ({"mode": "c"}, "config.mode: 'c' is not one of ['a', 'b']"),
        ({"inner": {"width": 4, "lrs": ["fast"]}}, "config.inner.lrs[0]: expected a number"),
        ({"inner": {"width": 4.5, "lrs": [1.0]}}, "config.inner.width: expected an integer"),
        ({"seed": -1}, "seed must be non-negative"),
    ],
)
def test_build_errors_name_the_key(patch, fragment):
    with pytest.raises(ConfigError) as err:
        build(Outer, {**GOOD, **patch})
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message


def test_missing_key():
    data = dict(GOOD)
    del data["mode"]
    with pytest.raises(ConfigError, match="missing key 'mode'"):
        build(Outer, data)


def _write(d: Path, name: str, text: str) -> None:
    (d / name).write_text(text)


def test_profiles_merge_and_errors(tmp_path):
    _write(tmp_path, "default.yaml", "seed: 1\nmode: a\ninner: {width: 4, lrs: [0.1]}\n")
    _write(tmp_path, "smoke.yaml", "inner: {width: 2}\n")
    _write(tmp_path, "paper.yaml", "inner: {widht: 2}\n")
    assert load_profile(Outer, tmp_path, "smoke").inner.width == 2
    assert load_profile(Outer, tmp_path, "default").inner.width == 4
    with pytest.raises(ConfigError, match=r"paper.yaml.inner: unknown key 'widht'"):
        load_profile(Outer, tmp_path, "paper")
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        load_profile(Outer, tmp_path, "huge")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="default.yaml: file not found"):
        load_profile(Outer, tmp_path, "default")
    _write(tmp_path, "default.yaml", "seed: [1\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_profile(Outer, tmp_path, "default")


@dataclasses.dataclass(frozen=True)
class Pair:
    betas: tuple[float, float]


def test_fixed_length_tuple():
    assert build(Pair, {"betas": [0.9, "0.99"]}).betas == (0.9, 0.99)
    with pytest.raises(ConfigError, match="config.betas: expected 2 items, got 3"):
        build(Pair, {"betas": [0.9, 0.99, 0.1]})


# ----------------------------------------------------------------------- seed variants


@dataclasses.dataclass(frozen=True)
class Sae:
    seed: int
    data_seed: int
    n_seeds: int
    resampling_n_seeds: int
    seeds_note: str


@dataclasses.dataclass(frozen=True)
class Run:
    sae: Sae


@dataclasses.dataclass(frozen=True)
class Seeded:
    seed: int
    corpus: dict[str, int]  # the corpus and tokenizer sections keep their seeds
    tokenizer: dict[str, int]
    runs: dict[str, Run]


SEEDED = """\
seed: 0
corpus: {seed: 7}
tokenizer: {seed: 8}
runs:
  main: {sae: {seed: 49, data_seed: 3, n_seeds: 4, resampling_n_seeds: 2, seeds_note: x}}
"""


def test_seed_variants_shift_every_seed_but_the_corpus(tmp_path):
    _write(tmp_path, "default.yaml", SEEDED)
    _write(tmp_path, "smoke.yaml", "runs: {main: {sae: {seed: 1}}}\n")
    base = load_profile(Seeded, tmp_path, "smoke")
    var = load_profile(Seeded, tmp_path, "smoke-seed2")
    assert (var.seed, var.runs["main"].sae.seed, var.runs["main"].sae.data_seed) == (2, 3, 5)
    assert var.corpus == base.corpus and var.tokenizer == base.tokenizer
    assert var.runs["main"].sae.n_seeds == 4 and var.runs["main"].sae.resampling_n_seeds == 2
    assert load_profile(Seeded, tmp_path, "default-seed1").runs["main"].sae.seed == 50


def test_shift_seeds_leaves_non_integers_and_lists():
    data = {"a": [{"seed": 1}, {"seed": "x"}], "b_seed": True, "corpus": {"x": {"seed": 1}}}
    assert shift_seeds(data, 3) == {"a": [{"seed": 4}, {"seed": "x"}], "b_seed": True,
                                    "corpus": {"x": {"seed": 1}}}
    assert shift_seeds(data, 0) is data


def test_profile_names():
    assert check_profile("default-seed1") == "default-seed1"
    assert (base_profile("paper-seed12"), seed_offset("paper-seed12")) == ("paper", 12)
    assert (base_profile("smoke"), seed_offset("smoke")) == ("smoke", 0)


@pytest.mark.parametrize("bad", ["huge", "default-seed0", "default-seed", "huge-seed1",
                                 "default-seed01", "default-seed-1", "default-seed1-seed2", 3,
                                 None])
def test_bad_profile_names_are_one_line(bad):
    with pytest.raises(ConfigError, match="unknown profile") as err:
        check_profile(bad)
    assert "\n" not in str(err.value)


def test_script_parser_takes_seed_variants(capsys):
    from shared.cli import script_parser

    assert script_parser("x").parse_args(["--profile", "smoke-seed3"]).profile == "smoke-seed3"
    with pytest.raises(SystemExit):
        script_parser("x").parse_args(["--profile", "smoke-seed0"])
    assert "unknown profile 'smoke-seed0'" in capsys.readouterr().err


def test_add_paths_keeps_the_option_order_and_help(capsys):
    from shared.cli import add_paths, parse_and_setup, script_parser

    p = add_paths(script_parser("x"), "analysis", "figure_dir", sweep="the sweep", out=None)
    assert [a.option_strings for a in p._actions[-4:]] == [
        ["--analysis"], ["--figure-dir"], ["--sweep"], ["--out"]]
    assert [a.help for a in p._actions[-4:]] == [None, None, "the sweep", None]
    assert all(a.required and a.type is Path for a in p._actions[-4:])
    args, cfg = parse_and_setup(
        p, ["--profile", "smoke", "--threads", "2", "--analysis", "a", "--figure-dir", "f",
            "--sweep", "s", "--out", "o"], lambda profile, threads: (profile, threads))
    assert cfg == ("smoke", 2) and args.figure_dir == Path("f")


def test_seed_variants_keep_the_training_text_generators():
    """The stand-ins' training text is the same on every seed: fact finding's world and
    steering's documents keep their seeds, the LM's seed moves."""
    from replications.fact_finding.config import load as ff_load
    from replications.steering.config import load as steer_load

    a, b = ff_load("smoke"), ff_load("smoke-seed1")
    assert a.world == b.world and a.corpus == b.corpus
    assert b.lm.train.seed == a.lm.train.seed + 1
    s0, s1 = steer_load("smoke"), steer_load("smoke-seed1")
    assert s0.docs == s1.docs
