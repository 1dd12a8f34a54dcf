"""What a job may read of the write-ups' configs, and `--config` overrides of them.

A Snakemake rule declares the config sections its job reads (`config_params` in
shared/common.smk); those sections' values are the rule's `params`, so editing one reruns
exactly the rules that declare it. The job gets the declaration in the environment variable
`MI_CONFIG` (JSON: `sections`, a list of "writeup.section", and `overrides`, write-up ->
mapping merged onto its profile's YAML). `load_profile` applies the overrides and hands back a
config whose undeclared sections raise `ConfigError` when read, so a declaration cannot silently
fall behind the code: the smoke DAG in the test suite runs every job under its declaration.
`MI_CONFIG_AUDIT=<dir>` records every section each job reads instead (to write declarations).
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from shared.config import ConfigError

T = TypeVar("T")

ENV = "MI_CONFIG"
AUDIT_ENV = "MI_CONFIG_AUDIT"


class UndeclaredSectionError(ConfigError):
    """A job read a config section its rule does not declare."""


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """The job's view of the write-up configs, from `MI_CONFIG`."""

    sections: frozenset[str] | None  # "writeup.section" readable; None: every section
    overrides: Mapping[str, Mapping[str, Any]]  # write-up -> overrides of its config


def typed(value: Any) -> Any:
    """A `--config` value with YAML's scalar types restored: Snakemake parses nested values
    with YAML's base loader, so `{train: {epochs: 2}}` arrives with the string '2'."""
    if isinstance(value, Mapping):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return parsed if isinstance(parsed, (int, float, bool)) or parsed is None else value
    return value


def encode(sections: list[str] | None, overrides: Mapping[str, Mapping[str, Any]]) -> str:
    """The `MI_CONFIG` value for a job (compact, key-sorted JSON)."""
    return json.dumps({"sections": sections, "overrides": overrides}, sort_keys=True,
                      separators=(",", ":"))


def current() -> JobConfig:
    """The job's declaration from the environment (no variable: everything readable)."""
    raw = os.environ.get(ENV)
    if not raw:
        return JobConfig(None, {})
    data = json.loads(raw)
    sections = data.get("sections")
    return JobConfig(None if sections is None else frozenset(sections),
                     data.get("overrides") or {})


_AUDIT: set[str] = set()


def _flush_audit(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else Path("python")
    job = ".".join(script.with_suffix("").parts[-4:])
    with (out / f"{job}.{os.getpid()}.txt").open("a") as f:
        f.writelines(f"{s}\n" for s in sorted(_AUDIT))


def guard(cfg: T, writeup: str, job: JobConfig) -> T:
    """`cfg` (a write-up's frozen config dataclass) as the job may see it: reading a section
    outside `job.sections` raises; under `MI_CONFIG_AUDIT` each read is recorded instead."""
    audit = bool(os.environ.get(AUDIT_ENV))
    if job.sections is None and not audit:
        return cfg
    cls = type(cfg)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    allowed = job.sections

    def getattribute(self: Any, name: str) -> Any:
        if name in fields:
            key = f"{writeup}.{name}"
            if audit:
                if not _AUDIT:
                    atexit.register(_flush_audit, Path(os.environ[AUDIT_ENV]))
                _AUDIT.add(key)
            elif allowed is not None and key not in allowed:
                raise UndeclaredSectionError(
                    f"config section '{key}' is read but its Snakemake rule does not declare it "
                    f"(declared: {', '.join(sorted(allowed)) or 'none'}); add it to the rule's "
                    "config_params(...)")
        return object.__getattribute__(self, name)

    guarded_cls = type(cls.__name__, (cls,), {"__getattribute__": getattribute,
                                              "__module__": cls.__module__})
    out: Any = object.__new__(guarded_cls)
    for f in fields:
        object.__setattr__(out, f, object.__getattribute__(cfg, f))
    return out
