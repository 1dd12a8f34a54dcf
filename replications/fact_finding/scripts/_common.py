"""Argument parsing and setup shared by the fact-finding scripts."""

from __future__ import annotations

import argparse
from typing import Any

from replications.fact_finding.config import Config, load
from shared.cli import load_and_setup, parse_and_setup, script_parser, user_errors


def parser(description: str, model: bool = True) -> argparse.ArgumentParser:
    p = script_parser(description)
    if model:
        p.add_argument("--model", required=True,
                       help="stand-in LM directory or a pretrained name (EleutherAI/pythia-2.8b)")
    return p


def setup(profile: str, threads: int, seed: int = 0) -> Config:
    """The profile's validated configuration (one-line error), seeds and threads."""
    return load_and_setup(load, profile, threads, seed)


def open_inputs(p: argparse.ArgumentParser, argv: list[str] | None, frozen: bool = False,
                ) -> tuple[argparse.Namespace, Config, dict, Any]:
    """The analysis scripts' start: the arguments, the profile's configuration (seeds,
    threads), facts.json (--facts) and the model (user errors: one line)."""
    from replications.fact_finding.facts import load_facts
    from shared.lm import load_model

    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        facts = load_facts(args.facts)
        model = load_model(args.model, device=cfg.model.device, frozen=frozen)
    return args, cfg, facts, model
