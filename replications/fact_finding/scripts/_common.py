"""Argument parsing and setup shared by the fact-finding scripts."""

from __future__ import annotations

import argparse

from replications.fact_finding.config import Config, load
from shared.cli import script_parser
from shared.config import ConfigError
from shared.runtime import seed_everything, set_threads
from shared.scripts.common import fail


def parser(description: str, model: bool = True) -> argparse.ArgumentParser:
    p = script_parser(description)
    if model:
        p.add_argument("--model", required=True,
                       help="stand-in LM directory or a pretrained name (EleutherAI/pythia-2.8b)")
    return p


def setup(profile: str, threads: int, seed: int = 0) -> Config:
    """Load and validate the profile's configuration (one-line error), seed, set threads."""
    try:
        cfg = load(profile)
    except ConfigError as err:
        fail(err)
    set_threads(threads)
    seed_everything(seed)
    return cfg
