"""Config loading: every kind of bad value gives a one-line ConfigError naming the key."""

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from shared.config import ConfigError, build, check, config_hash, load_profile

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
