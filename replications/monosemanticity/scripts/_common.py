"""Argument parsing and setup shared by the monosemanticity scripts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from replications.monosemanticity import training
from replications.monosemanticity.config import Config, load
from shared.cli import load_and_setup, parse_and_setup, script_parser, user_errors


def parser(description: str, model: bool = True) -> argparse.ArgumentParser:
    p = script_parser(description)
    if model:
        p.add_argument("--model", required=True,
                       help="stand-in LM directory or a pretrained name (gelu-1l)")
        p.add_argument("--tokens", type=Path, required=True,
                       help="tokens.safetensors with train / val rows")
    return p


def setup(profile: str, threads: int, seed: int = 0) -> Config:
    """The profile's validated configuration (one-line error), seeds and threads."""
    return load_and_setup(load, profile, threads, seed)


def open_inputs(p: argparse.ArgumentParser, argv: list[str] | None,
                ) -> tuple[argparse.Namespace, Config, Any, training.Tokens]:
    """Every model script's start: the arguments, the profile's configuration (seeds, threads),
    the LM and its token rows (user errors: one line)."""
    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        model = training.load_lm(args.model, cfg.model.device)
        tokens = training.load_token_rows(args.tokens, cfg)
    return args, cfg, model, tokens
