"""Setup shared by the challenge-2 scripts."""

from __future__ import annotations

from replications.grid_challenge.config import Config, load
from shared.cli import load_and_setup


def setup(profile: str, threads: int) -> Config:
    """The profile's validated configuration (one-line error); threads; the model seed."""
    return load_and_setup(load, profile, threads, lambda cfg: cfg.model.seed)
