"""Setup shared by the local-processing scripts."""

from __future__ import annotations

from replications.local_processing.config import Config, load
from shared.cli import load_and_setup


def setup(profile: str, threads: int) -> Config:
    """The profile's validated configuration (one-line error); threads; the data seed."""
    return load_and_setup(load, profile, threads, lambda cfg: cfg.data.seed)
