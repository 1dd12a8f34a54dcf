"""Setup shared by the SAE-methods scripts: configuration and the model of a site."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from replications.sae_methods.config import Config, load
from shared.cli import load_and_setup, log, user_errors
from shared.config import ConfigError


def setup(profile: str, threads: int) -> Config:
    """The profile's validated configuration (one-line error); threads. Every stage seeds its
    own generators from its section's seed, so the global seed is fixed at 0."""
    return load_and_setup(load, profile, threads, 0)


def add_model_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--model", required=True,
                   help="the stand-in LM's directory or a pretrained name (gelu-1l, "
                        "EleutherAI/pythia-2.8b)")
    p.add_argument("--tokens", type=Path,
                   help="the stand-in's tokens.safetensors (stand-in profiles only)")
    return p


def load_site_model(stage: str, args: argparse.Namespace, cfg: Config) -> Any:
    """The site's model (TransformerLens, default weight processing, frozen); `--tokens` must be
    given exactly with the stand-in."""
    from shared.lm import describe_model, load_model

    stand_in = cfg.model.source == "stand_in"
    with user_errors():
        if stand_in != (args.tokens is not None):
            raise ConfigError("--tokens is needed with model.source stand_in and only then "
                              f"(profile {args.profile}: {cfg.model.source})")
        model = load_model(args.model, cfg.model.device, processed=True, frozen=True,
                           need_tokenizer=not stand_in)
    log(f"[{stage}] {args.model}: {describe_model(model)}")
    return model
