"""Argument parsing and setup shared by the local-processing scripts."""

from __future__ import annotations

from replications.local_processing.config import Config, load
from shared.config import ConfigError
from shared.runtime import seed_everything, set_threads
from shared.scripts.common import fail


def setup(profile: str, threads: int) -> Config:
    """Load and validate the profile's configuration (one-line error), seed, set threads."""
    try:
        cfg = load(profile)
    except ConfigError as err:
        fail(err)
    set_threads(threads)
    seed_everything(cfg.data.seed)
    return cfg
