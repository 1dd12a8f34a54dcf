"""The pipeline registry: which write-ups exist and what each one's DAG ends in.

Every write-up declares itself in a manifest, `replications/<name>/writeup.yaml` (name, title,
order, rule prefix, claims file, figures, the model zoo's stand-ins it reads, the artifacts it
offers other write-ups and the ones it reads). The Snakefile, the DVC generator (`shared.dvc_gen`), the scorecard and figure
collection all read the manifests through this module, so they cannot disagree, and the library
never imports a write-up. A new write-up is a folder with a manifest: nothing here changes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shlex
from pathlib import Path
from typing import Any, NoReturn

from shared import cli, config_access
from shared.config import ConfigError, base_profile, build, check, check_profile, read_yaml

ROOT = Path(__file__).resolve().parent.parent
REPLICATIONS = ROOT / "replications"
MANIFEST = "writeup.yaml"
SCORECARD_DIR = "results/{profile}/scorecard"


@dataclasses.dataclass(frozen=True)
class Artifact:
    """Something one write-up makes and others may read."""

    stand_in: str = ""  # path under results/<profile>/<writeup>/ where the stand-in is trained
    files: tuple[str, ...] = ()  # for a folder: the files in it that a reader depends on
    pretrained: str = ""  # the published name read instead in the paper profile ("" if none)

    def __post_init__(self) -> None:
        check(bool(self.stand_in or self.pretrained), "an artifact needs stand_in or pretrained")


@dataclasses.dataclass(frozen=True)
class Use:
    """An artifact of another write-up that this one reads."""

    writeup: str
    artifact: str


@dataclasses.dataclass(frozen=True)
class Manifest:
    name: str  # the folder name under replications/
    title: str
    order: int  # place in the scorecard, dvc.yaml and the Snakefile's includes
    prefix: str  # rule-name prefix; `<prefix>_all` builds the write-up
    claims: str  # claims file, relative to the write-up's folder
    figures: dict[str, str]  # figure name -> what it shows
    models: tuple[str, ...] = ()  # stand-in models of the model zoo it reads, by name
    provides: dict[str, Artifact] = dataclasses.field(default_factory=dict)
    uses: tuple[Use, ...] = ()
    # Run name -> its per-step history under results/<profile>/<name>/ (`file.json` or
    # `file.json#dotted.key`), for the training-curves figure and DVCLive logs (shared.curves).
    # The stand-in LM of the model zoo it owns is added as the run `lm`.
    training: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Handoff:
    """An artifact resolved for one profile: the files a rule depends on and what a script is
    given (a path, or a published name when the paper profile reads it by name)."""

    inputs: list[str]
    spec: str


def _read(path: Path) -> Manifest:
    manifest = build(Manifest, read_yaml(path), str(path))
    check(manifest.name == path.parent.name,
          f"{path}: name '{manifest.name}' is not the folder's name '{path.parent.name}'")
    return manifest


@functools.cache
def manifests() -> dict[str, Manifest]:
    """Every write-up's manifest, in `order`, with cross-references checked."""
    found = sorted((_read(p) for p in REPLICATIONS.glob(f"*/{MANIFEST}")),
                   key=lambda m: (m.order, m.name))
    out = {m.name: m for m in found}
    for field in ("order", "prefix"):
        values = [getattr(m, field) for m in found]
        check(len(set(values)) == len(values), f"two write-up manifests share a {field}")
    for m in found:
        for use in m.uses:
            where = f"replications/{m.name}/{MANIFEST}: uses {use.writeup}/{use.artifact}"
            check(use.writeup in out and use.writeup != m.name, f"{where}: no such write-up")
            check(use.artifact in out[use.writeup].provides,
                  f"{where}: {use.writeup} provides no such artifact")
    return out


def manifest(writeup: str) -> Manifest:
    try:
        return manifests()[writeup]
    except KeyError:
        raise ConfigError(f"unknown write-up '{writeup}' (no replications/{writeup}/{MANIFEST})")


def _writeups() -> tuple[str, ...]:
    try:
        return tuple(manifests())
    except ConfigError as err:
        fail(err)


# Write-ups in manifest order.
WRITEUPS: tuple[str, ...] = _writeups()
# Rule-name prefix of each write-up.
PREFIX: dict[str, str] = {w: manifest(w).prefix for w in WRITEUPS}
# Write-ups whose results another write-up reads: their results folders become DVC dependencies
# of the reader's stage.
USES: dict[str, tuple[str, ...]] = {
    w: tuple(dict.fromkeys(u.writeup for u in manifest(w).uses)) for w in WRITEUPS
    if manifest(w).uses
}


def figures(writeup: str) -> dict[str, str]:
    """Figure name -> description for one write-up."""
    return dict(manifest(writeup).figures)


def training_run_names(writeup: str) -> list[str]:
    """The write-up's training runs as shared.curves logs them: `lm` where it trains its own
    stand-in (it lists a zoo model and reads none from another write-up), then its manifest's
    `training` runs."""
    m = manifest(writeup)
    return (["lm"] if m.models and not m.uses else []) + list(m.training)


def results_dir(profile: str, writeup: str) -> str:
    return f"results/{profile}/{writeup}"


def figure_paths(profile: str, writeup: str, ext: str = "png") -> list[str]:
    return [f"{results_dir(profile, writeup)}/figures/{n}.{ext}" for n in figures(writeup)]


def metrics_path(profile: str, writeup: str) -> str:
    return f"{results_dir(profile, writeup)}/metrics.json"


def scorecard_path(profile: str, ext: str = "json") -> str:
    return f"{SCORECARD_DIR.format(profile=profile)}/scorecard.{ext}"


def claims_path(writeup: str) -> str:
    return f"replications/{writeup}/{manifest(writeup).claims}"


def handoff(profile: str, reader: str, writeup: str, artifact: str, stand_in: bool) -> Handoff:
    """Another write-up's artifact, as `reader` (which must declare it under `uses`) gets it:
    the stand-in's files in profiles that train one, else the published name."""
    if Use(writeup, artifact) not in manifest(reader).uses:
        raise ConfigError(f"replications/{reader}/{MANIFEST} does not declare that it uses "
                          f"{writeup}/{artifact}")
    art = manifest(writeup).provides[artifact]
    if not stand_in:
        return Handoff([], art.pretrained)
    if not art.stand_in:
        raise ConfigError(f"{writeup}/{artifact} has no stand-in path")
    path = f"{results_dir(profile, writeup)}/{art.stand_in}"
    return Handoff([f"{path}/{f}" for f in art.files] or [path], path)


def fail(err: BaseException | str) -> NoReturn:
    """Stop Snakefile parsing with a one-line error (no traceback) before any job runs."""
    cli.fail(err, "config error")


# The Snakefile's --config keys and their defaults.
CONFIG_DEFAULTS: dict[str, Any] = {"profile": "default", "seed": 0, "robustness_seeds": 3}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What `snakemake --config ...` asked for."""

    profile: str  # the profile paths and scripts see: `<given>-seed<seed>` when seed > 0
    seed: int
    robustness_seeds: int  # seeds of the robustness/ target, 0..N-1
    # `--config <write-up>="{section: {key: value}}"`: merged onto that write-up's config.
    overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def overrides_args(self) -> str:
        """The overrides as `--config` arguments, for a nested Snakemake run."""
        return " ".join(f"{w}={shlex.quote(json.dumps(v, sort_keys=True))}"
                        for w, v in self.overrides.items())


def _count(config: dict[str, Any], key: str, least: int) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"--config {key}={value!r}: expected an integer >= {least}")
    return value


def run_config(config: dict[str, Any]) -> RunConfig:
    """Validate Snakemake's `config` (defaults filled in, in place); one-line ConfigError."""
    for key, value in CONFIG_DEFAULTS.items():
        config.setdefault(key, value)
    unknown = sorted(set(config) - set(CONFIG_DEFAULTS) - set(WRITEUPS))
    if unknown:
        raise ConfigError(f"unknown --config key '{unknown[0]}' (known: "
                          f"{', '.join(sorted(CONFIG_DEFAULTS))}, or a write-up's name)")
    overrides: dict[str, dict[str, Any]] = {}
    for w in WRITEUPS:
        if w in config:
            if not isinstance(config[w], dict) or not config[w]:
                raise ConfigError(f"--config {w}={config[w]!r}: expected a mapping of config "
                                  f"sections, e.g. {w}=\"{{train: {{seed: 1}}}}\"")
            overrides[w] = config_access.typed(config[w])
    given = check_profile(config["profile"])
    seed = _count(config, "seed", 0)
    if seed and given != base_profile(given):
        # Adding a seed to a seed variant is ambiguous (offset or absolute?): refuse it.
        raise ConfigError(f"--config seed={seed} with the seed variant profile={given}: give one")
    return RunConfig(f"{given}-seed{seed}" if seed else given, seed,
                     _count(config, "robustness_seeds", 1), overrides)


# Write-up -> its config as the Snakefile loaded it (what rules' `config_params` read).
LOADED: dict[str, Any] = {}


def load_writeup_config(module: Any, profile: str) -> Any:
    """Validate a write-up's configuration at parse time, before any job runs."""
    try:
        cfg = module.load(profile)
    except ConfigError as err:
        fail(err)
    LOADED[module.__name__.split(".")[1]] = cfg
    return cfg
