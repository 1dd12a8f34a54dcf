"""Configuration of the embedding studies: one frozen dataclass per part.

Values live in `config/default.yaml` (complete) with `smoke.yaml` / `paper.yaml` overrides.

- `model`: stand-in (the steering write-up's GPT-2-shaped LM, passed by the rules as `--model`)
  or the posts' models by name (GPT-Neo 125M for Puzzle 1, GPT-2 small for the rest).
- `text`: the rows the residual stream and the word list are read from (the stand-in's
  validation rows, or a data set by name).
- `puzzle1`: vocabulary subsample, principal components removed, residual positions sampled,
  histogram bins.
- `directions`: Puzzle 2's token filter, held-out split, ridge, shuffled baselines, probe.
- `positional`: the word-index prompts (prefix, words, sizes), the probed layer, the probe.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from shared.config import check, check_at_least, check_open_interval, load_profile

CONFIG_DIR = Path(__file__).parent / "config"
WRITEUP = "embedding_studies"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    source: Literal["stand_in", "pretrained"]
    puzzle1: str  # pretrained: Puzzle 1's model by name; stand_in: ""
    main: str  # pretrained: the model of Puzzle 2 and the positional study; stand_in: ""
    device: Literal["auto", "cpu", "cuda"]

    def __post_init__(self) -> None:
        named = bool(self.puzzle1) and bool(self.main)
        if self.source == "pretrained":
            check(named, "model.puzzle1 and model.main are needed with source: pretrained")
        else:
            check(not self.puzzle1 and not self.main,
                  "model.puzzle1 and model.main must be empty with source: stand_in")


@dataclasses.dataclass(frozen=True)
class TextConfig:
    dataset: str  # pretrained: a text data set by name (NeelNanda/pile-10k); stand_in: ""
    row_len: int  # tokens per row, BOS first
    n_rows: int
    seed: int  # picks the stand-in's validation rows

    def __post_init__(self) -> None:
        check_at_least(self, "text", row_len=8, n_rows=2, seed=0)


@dataclasses.dataclass(frozen=True)
class Puzzle1Config:
    n_tokens: int  # vocabulary subsample (all of it when the vocabulary is smaller)
    remove_pcs: tuple[int, ...]  # top principal components removed after centring
    resid_tokens: int  # residual-stream positions sampled from the text rows
    hist_bins: int  # histogram bins on [-1, 1] (stored in the JSON the figures read)
    seed: int

    def __post_init__(self) -> None:
        check_at_least(self, "puzzle1", n_tokens=16, resid_tokens=16, hist_bins=10, seed=0)
        check(len(self.remove_pcs) >= 1 and min(self.remove_pcs) >= 1
              and list(self.remove_pcs) == sorted(set(self.remove_pcs)),
              "puzzle1.remove_pcs must be distinct increasing positive counts")


@dataclasses.dataclass(frozen=True)
class DirectionsConfig:
    max_chars: int  # tokens longer than this (decoded) are left out as degenerate
    test_fraction: float
    ridge: float  # L2 of the length regression, relative to the mean feature variance
    min_per_length: int  # lengths with fewer tokens are left out of the step analysis
    n_shuffles: int
    probe_l2: float
    probe_max_iter: int
    seed: int

    def __post_init__(self) -> None:
        check_open_interval(self, "directions", test_fraction=(0, 1))
        check_at_least(self, "directions", max_chars=2, ridge=0.0, min_per_length=2,
                       n_shuffles=1, probe_l2=0.0, probe_max_iter=1, seed=0)


@dataclasses.dataclass(frozen=True)
class PositionalConfig:
    prefix: str  # fixed text before the words (a BOS is added in front)
    n_words: int  # words per prompt: the probe's classes
    max_word_tokens: int  # words of 1..max_word_tokens tokens (the post: 3)
    min_word_count: int  # words that occur at least this often in the text rows
    dict_train_fraction: float  # share of each length's words used in training prompts
    n_train_prompts: int
    n_val_prompts: int
    layer: int  # the headline layer: the residual after this block
    probe_l2: float
    probe_max_iter: int
    batch_prompts: int
    seed: int

    def __post_init__(self) -> None:
        check(bool(self.prefix.strip()), "positional.prefix must not be empty")
        check_open_interval(self, "positional", dict_train_fraction=(0, 1))
        check_at_least(self, "positional", n_words=2, max_word_tokens=1, min_word_count=1,
                       n_train_prompts=2, n_val_prompts=2, layer=0, probe_l2=0.0,
                       probe_max_iter=1, batch_prompts=1, seed=0)


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig
    text: TextConfig
    puzzle1: Puzzle1Config
    directions: DirectionsConfig
    positional: PositionalConfig

    def __post_init__(self) -> None:
        stand_in = self.model.source == "stand_in"
        check(stand_in == (self.text.dataset == ""),
              "text.dataset must be empty with model.source stand_in and set otherwise")


def load(profile: str) -> Config:
    """The validated configuration of `profile`."""
    return load_profile(Config, CONFIG_DIR, profile)
