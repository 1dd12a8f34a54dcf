"""Configuration of the Caesar-cipher replication: one frozen dataclass per part.

Values live in `config/default.yaml` (complete) with `smoke.yaml` / `paper.yaml` overrides.

- `data`: word-list size, sequence length, train / validation sizes, the held-out share of the
  text (hard mode), the data seed.
- `model`: the post's attention-only transformer (2 layers, 2 heads, d_model 48, d_head 24,
  LayerNorm) and its attention direction (causal: see the README).
- `train`: which modes, epochs, batch, Adam with weight decay, the linear learning-rate decay,
  checkpointing.
- `analysis`: how many validation sequences the analyses read, which modes get the circuit
  analyses (easy, medium), the positions the direct-logit attribution reports.
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
    load_profile,
)

CONFIG_DIR = Path(__file__).parent / "config"
WRITEUP = "caesar_cipher"

Mode = Literal["easy", "medium", "hard"]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    word_list_size: int  # the post: the 100 most frequent 3-letter words
    seq_len: int  # the post: 32 (8 words of 3 letters and a space)
    n_train: int  # fixed training set per mode (the post: 150k)
    n_val: int  # validation set per mode (the post: 10k)
    val_text_fraction: float  # hard mode: the text's last share is validation only
    seed: int

    def __post_init__(self) -> None:
        check_at_least(self, "data", word_list_size=2)
        check(self.seq_len >= 4, "data.seq_len must be at least 4 (one word and a space)")
        check(self.n_train >= 1 and self.n_val >= 1, "data.n_train and data.n_val must be positive")
        check_open_interval(self, "data", val_text_fraction=(0, 0.5))
        check_at_least(self, "data", seed=0)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    attention: Literal["causal", "bidirectional"]
    normalization: Literal["LN"]  # the post: LayerNorm (before each layer and at the end)
    seed: int  # weight initialisation

    def __post_init__(self) -> None:
        check(self.n_layers >= 1 and self.n_heads >= 1, "model.n_layers and n_heads must be >= 1")
        check(self.d_model >= 1 and self.d_head >= 1, "model.d_model and d_head must be >= 1")
        check_at_least(self, "model", seed=0)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    modes: tuple[Mode, ...]
    epochs: int
    batch_size: int
    lr: float  # the post: 1e-3, decaying linearly ...
    lr_end: float  # ... to 1e-4
    weight_decay: float  # the post: 0.001 (Adam's L2 weight decay)
    checkpoint_every: int
    log_every: int
    device: Literal["auto", "cpu", "cuda"]

    def __post_init__(self) -> None:
        check(len(self.modes) >= 1 and len(set(self.modes)) == len(self.modes),
              "train.modes must be distinct and not empty")
        check(self.epochs >= 1 and self.batch_size >= 1, "train.epochs and batch_size must be >= 1")
        check_lr_decay(self, "train")


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    n_eval: int  # validation sequences the analyses read
    circuit_modes: tuple[Mode, ...]  # modes that get the word-level circuit analyses
    dla_position: int  # the post's "seq_pos=1" panel

    def __post_init__(self) -> None:
        check_at_least(self, "analysis", n_eval=2)
        check("hard" not in self.circuit_modes,
              "analysis.circuit_modes: the word-level analyses need easy or medium")
        check_at_least(self, "analysis", dla_position=0)


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    analysis: AnalysisConfig

    def __post_init__(self) -> None:
        check(self.analysis.n_eval <= self.data.n_val,
              f"analysis.n_eval ({self.analysis.n_eval}) must be at most data.n_val")
        check(set(self.analysis.circuit_modes) <= set(self.train.modes),
              "analysis.circuit_modes must be trained (train.modes)")
        check(self.analysis.dla_position < self.data.seq_len,
              "analysis.dla_position must be below data.seq_len")


def load(profile: str) -> Config:
    """The validated configuration of `profile`."""
    return load_profile(Config, CONFIG_DIR, profile)
