"""Configuration of the challenge-2 replication: one frozen dataclass per part.

Values live in `config/default.yaml` (complete) with `smoke.yaml` / `paper.yaml` overrides.

- `data`: the share of the 113 x 113 grid the model is trained on (the challenge: 50%) and the
  split's seed.
- `model`: the challenge's transformer (1 layer, d_model 128, 8 heads of 16, d_mlp 1024, ReLU,
  no LayerNorm) and its initialisation seed.
- `train`: full-batch AdamW (the challenge: constant lr 5e-4, weight decay 1.0, 5000 epochs),
  an optional linear decay of the rate, checkpointing.
- `analysis`: the neuron-family threshold, what counts as "near" a boundary, the probes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from shared.config import (
    check,
    check_at_least,
    check_lr_decay,
    check_open_interval,
    check_positive,
    load_profile,
)

CONFIG_DIR = Path(__file__).parent / "config"
WRITEUP = "grid_challenge"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    train_fraction: float  # the challenge: 0.5
    seed: int  # the split

    def __post_init__(self) -> None:
        check_open_interval(self, "data", train_fraction=(0, 1))
        check_at_least(self, "data", seed=0)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    d_model: int  # the challenge: 128
    n_heads: int  # 8
    d_head: int  # 16
    d_mlp: int  # 1024
    seed: int  # weight initialisation

    def __post_init__(self) -> None:
        check(min(self.d_model, self.n_heads, self.d_head, self.d_mlp) >= 1,
              "model.d_model, n_heads, d_head and d_mlp must be positive")
        check_at_least(self, "model", seed=0)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int  # full-batch steps (the challenge: 5000)
    lr: float  # the challenge: 5e-4
    lr_end: float  # the rate falls linearly from lr to lr_end (the challenge: constant)
    weight_decay: float  # the challenge: 1.0 (AdamW, decoupled)
    checkpoint_every: int
    log_every: int
    device: Literal["auto", "cpu", "cuda"]

    def __post_init__(self) -> None:
        check_at_least(self, "train", epochs=1)
        check_lr_decay(self, "train")


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    family_threshold: float  # neurons whose max |contribution| exceeds this form the families
    near: float  # a cell is "near" a boundary within this many columns of its switch
    probe_steps: int  # L-BFGS iterations of each linear probe
    probe_l2: float  # the probes' L2 penalty

    def __post_init__(self) -> None:
        check_positive(self, "analysis", "family_threshold")
        check(self.near >= 0.5, "analysis.near must be at least 0.5 (the switch's own cells)")
        check_at_least(self, "analysis", probe_steps=1, probe_l2=0)


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    analysis: AnalysisConfig


def load(profile: str) -> Config:
    """The validated configuration of `profile`."""
    return load_profile(Config, CONFIG_DIR, profile)
