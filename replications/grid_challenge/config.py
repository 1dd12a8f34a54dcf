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

from shared.config import check, load_profile

CONFIG_DIR = Path(__file__).parent / "config"
WRITEUP = "grid_challenge"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    train_fraction: float  # the challenge: 0.5
    seed: int  # the split

    def __post_init__(self) -> None:
        check(0 < self.train_fraction < 1, "data.train_fraction must lie in (0, 1)")
        check(self.seed >= 0, "data.seed must be non-negative")


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
        check(self.seed >= 0, "model.seed must be non-negative")


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
        check(self.epochs >= 1, "train.epochs must be at least 1")
        check(self.lr > 0 and 0 <= self.lr_end <= self.lr, "train needs lr > 0, 0 <= lr_end <= lr")
        check(self.weight_decay >= 0, "train.weight_decay must be non-negative")
        check(self.checkpoint_every >= 1 and self.log_every >= 1,
              "train.checkpoint_every and log_every must be positive")


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    family_threshold: float  # neurons whose max |contribution| exceeds this form the families
    near: float  # a cell is "near" a boundary within this many columns of its switch
    probe_steps: int  # L-BFGS iterations of each linear probe
    probe_l2: float  # the probes' L2 penalty

    def __post_init__(self) -> None:
        check(self.family_threshold > 0, "analysis.family_threshold must be positive")
        check(self.near >= 0.5, "analysis.near must be at least 0.5 (the switch's own cells)")
        check(self.probe_steps >= 1, "analysis.probe_steps must be at least 1")
        check(self.probe_l2 >= 0, "analysis.probe_l2 must be non-negative")


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    analysis: AnalysisConfig


def load(profile: str) -> Config:
    """The validated configuration of `profile`."""
    return load_profile(Config, CONFIG_DIR, profile)
