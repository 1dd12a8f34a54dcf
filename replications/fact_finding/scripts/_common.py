"""Argument parsing and setup shared by the fact-finding scripts."""

from __future__ import annotations

import argparse

from replications.fact_finding.config import Config, load
from shared.cli import load_and_setup, script_parser


def parser(description: str, model: bool = True) -> argparse.ArgumentParser:
    p = script_parser(description)
    if model:
        p.add_argument("--model", required=True,
                       help="stand-in LM directory or a pretrained name (EleutherAI/pythia-2.8b)")
    return p


def setup(profile: str, threads: int, seed: int = 0) -> Config:
    """The profile's validated configuration (one-line error), seeds and threads."""
    return load_and_setup(load, profile, threads, seed)
