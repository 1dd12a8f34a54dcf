"""Configuration of the toy-models replication: one frozen dataclass per part.

Values live in `config/default.yaml` (complete) with `smoke.yaml` / `paper.yaml` overrides.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from replications.toy_models.sae_tms import SAETMSConfig
from replications.toy_models.tms import TMSConfig
from replications.toy_models.tracr_compression import CompressionConfig
from replications.toy_models.tracr_models import TracrConfig
from shared.config import check, load_profile

CONFIG_DIR = Path(__file__).parent / "config"
WRITEUP = "toy_models"


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int
    device: Literal["auto", "cpu", "cuda"]
    tms: TMSConfig
    sae_tms: SAETMSConfig
    tracr: TracrConfig
    compression: CompressionConfig

    def __post_init__(self) -> None:
        check(self.seed >= 0, "seed must be non-negative")


def load(profile: str) -> Config:
    """The validated configuration of `profile`."""
    return load_profile(Config, CONFIG_DIR, profile)
