"""Setup shared by the SAE-methods scripts: configuration and the model of a site."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from replications.sae_methods.config import Config, load
from shared.cli import load_and_setup, log, user_errors
from shared.config import ConfigError
from shared.io import load_tensors, read_json


def setup(profile: str, threads: int) -> Config:
    """The profile's validated configuration (one-line error); threads. Every stage seeds its
    own generators from its section's seed, so the global seed is fixed at 0."""
    return load_and_setup(load, profile, threads, 0)


def add_result_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--sweeps (one folder per site) and --ito, which the analysis and the figures both read."""
    p.add_argument("--sweeps", type=Path, nargs="+", required=True,
                   help="each site's sweep folder (sweep.json, norms.safetensors)")
    p.add_argument("--ito", type=Path, required=True, help="the ITO study's folder (ito.json)")
    return p


def read_results(args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """Site name -> sweep summary, site name -> norm statistics, and the ITO summary."""
    sweeps, norms = {}, {}
    with user_errors():
        for d in args.sweeps:
            s = read_json(d / "sweep.json")
            sweeps[s["site"]] = s
            norms[s["site"]] = load_tensors(d / "norms.safetensors")
        ito = read_json(args.ito / "ito.json")
    return sweeps, norms, ito


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
