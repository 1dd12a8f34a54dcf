"""Where a shared script's configuration comes from: the rule, as JSON.

The model zoo's rules (shared/zoo.smk) pass the section of the owning write-up's config as
`--config JSON`; tests and experiments may give `--config-json FILE` instead. Both end in the
same frozen dataclass. `--writeup` and `--profile` only label outputs (figure provenance): the
library never imports a write-up to find its settings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TypeVar

from shared.config import ConfigError, build
from shared.io import read_json

T = TypeVar("T")


def add_config_args(parser: argparse.ArgumentParser, section: str) -> None:
    """--config JSON or --config-json FILE; --writeup / --profile labels."""
    parser.add_argument("--config", help=f"the {section} settings as a JSON object")
    parser.add_argument("--config-json", type=Path, help=f"read the {section} settings from a file")
    parser.add_argument("--writeup", default="shared", help="the write-up the output is for (label)")
    parser.add_argument("--profile", default="custom", help="the profile the output is for (label)")


def resolve_config(args: argparse.Namespace, cls: type[T]) -> T:
    """The settings the arguments give, as a validated `cls`."""
    if (args.config is None) == (args.config_json is None):
        raise ConfigError("give exactly one of --config JSON and --config-json FILE")
    if args.config_json is not None:
        return build(cls, read_json(args.config_json), str(args.config_json))
    try:
        data = json.loads(args.config)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--config: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError("--config: expected a JSON object")
    return build(cls, data, "--config")
