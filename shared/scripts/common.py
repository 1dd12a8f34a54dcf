"""Where a shared script's configuration comes from: the calling write-up or a JSON file.

Write-ups own their settings: `--writeup W --profile P --key K` loads
`replications/W/config.py::load(P)` (validated from its YAML files) and takes the attribute
path `K` (e.g. `lm`, `corpus`, `fact_lm`). `--config-json FILE` instead reads the same fields
from JSON (tests, experiments); both end in the same frozen dataclass.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any, TypeVar

from shared.config import ConfigError, build
from shared.io import read_json

T = TypeVar("T")


def add_config_args(parser: argparse.ArgumentParser, key: str) -> None:
    """--writeup/--profile/--key, or --config-json."""
    parser.add_argument("--writeup", help="write-up package under replications/")
    parser.add_argument("--profile", help="smoke, default or paper")
    parser.add_argument("--key", default=key,
                        help=f"attribute path of the section in the write-up's config ({key})")
    parser.add_argument("--config-json", type=Path,
                        help="read the section from this JSON file instead of a write-up")


def resolve_config(args: argparse.Namespace, cls: type[T]) -> T:
    """The configuration section the arguments name, as a validated `cls`."""
    if args.config_json is not None:
        return build(cls, read_json(args.config_json), str(args.config_json))
    if not (args.writeup and args.profile):
        raise ConfigError("give --writeup and --profile (or --config-json)")
    module = importlib.import_module(f"replications.{args.writeup}.config")
    value: Any = module.load(args.profile)
    for part in args.key.split("."):
        if not hasattr(value, part):
            raise ConfigError(f"replications/{args.writeup} config has no section '{args.key}'")
        value = getattr(value, part)
    if not isinstance(value, cls):
        raise ConfigError(
            f"replications/{args.writeup} config '{args.key}' is a {type(value).__name__}, "
            f"not a {cls.__name__}"
        )
    return value


def fail(err: Exception) -> None:
    """One-line error on stderr, exit status 1."""
    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(1)
