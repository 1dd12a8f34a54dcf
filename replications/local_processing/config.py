"""Configuration of the local-processing replication: one frozen dataclass per part.

Values live in `config/default.yaml` (complete) with `smoke.yaml` / `paper.yaml` overrides.

- `data`: where the prompts come from (stand-in: validation rows of the fact-finding stand-in's
  tokenized corpus; paper: `NeelNanda/pile-10k` by name, tokenized with Pythia's tokenizer),
  how many, how long, and which tokens of each are sampled.
- `harvest`: the truncated contexts, the batching layout, tokens per forward, device, precision.
- `categories`: the write-up's token categories (its hand-made common-word list) and where the
  per-category distributions are read (layer 0, context 10).
- `analysis`: the headline context (5), the contrast context (1), the "first third" of layers,
  the tail quantile and the number of outlier tokens listed.
- `figures`: rendering choices.

The language model itself is the fact-finding write-up's (its stand-in, or Pythia 2.8B in
`paper`): the rules pass it as `--model`, so nothing here trains a model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from shared.config import check, check_at_least, check_open_interval, load_profile

CONFIG_DIR = Path(__file__).parent / "config"
WRITEUP = "local_processing"

# by_length: one forward per context length; padded: every length in one right-padded batch.
Layout = Literal["by_length", "padded"]
Precision = Literal["fp32", "tf32", "bf16"]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Prompts and sampled tokens."""

    source: Literal["stand_in", "pretrained"]  # stand_in: the fact-finding stand-in's corpus
    dataset: str  # pretrained: a text data set by name (NeelNanda/pile-10k); stand_in: ""
    prompt_len: int  # tokens per prompt, BOS first
    n_prompts: int
    samples_per_prompt: int  # distinct positions sampled from each prompt
    min_position: int  # sampled positions lie in [min_position, prompt_len)
    seed: int  # picks the stand-in's validation rows and the sampled positions

    def __post_init__(self) -> None:
        check(self.prompt_len >= 2 and self.n_prompts >= 2,
              "data.prompt_len and data.n_prompts must be at least 2")
        check(0 < self.samples_per_prompt <= self.prompt_len - self.min_position,
              "data.samples_per_prompt must lie in [1, prompt_len - min_position]")
        check_at_least(self, "data", seed=0)
        if self.source == "pretrained":
            check(bool(self.dataset), "data.dataset is needed with source: pretrained")
        else:
            check(self.dataset == "", "data.dataset must be empty with source: stand_in")


@dataclasses.dataclass(frozen=True)
class HarvestConfig:
    """Truncated contexts and how the forward passes are batched."""

    contexts: tuple[int, ...]  # tokens kept, the token itself included (a BOS is added)
    layout: Layout  # by_length: one forward per length; padded: all lengths in one batch
    batch_tokens: int  # token positions per forward pass (padding included)
    device: Literal["auto", "cpu", "cuda"]
    precision: Precision  # fp32; tf32 (CUDA matmuls); bf16 (weights and activations)

    def __post_init__(self) -> None:
        check(len(self.contexts) >= 1 and min(self.contexts) >= 1,
              "harvest.contexts must be positive context lengths")
        check(list(self.contexts) == sorted(set(self.contexts)),
              "harvest.contexts must be distinct and increasing")
        check(self.batch_tokens >= 1, "harvest.batch_tokens must be positive")


@dataclasses.dataclass(frozen=True)
class CategoryConfig:
    """The write-up's error analysis by token category."""

    common_words: tuple[str, ...]  # footnote 4's hand-made list (lower case)
    layer: int  # block whose residual is compared (write-up: layer 0)
    context: int  # truncated context (write-up: 10)

    def __post_init__(self) -> None:
        check(len(self.common_words) >= 1, "categories.common_words must not be empty")
        check(all(w == w.lower() and w.strip() == w and w for w in self.common_words),
              "categories.common_words must be lower-case words without spaces")
        check_at_least(self, "categories", layer=0)


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """Summary statistics behind the claims."""

    focus_context: int  # the write-up's headline plot (context 5)
    contrast_context: int  # the write-up's red line (context 1: the token alone)
    first_fraction: float  # "the first third": layer round(first_fraction * (n_layers - 1))
    tail_quantile: float  # tail lengths: (median - q) / (q(1 - .) - median)
    n_outliers: int  # lowest-cosine tokens listed for inspection

    def __post_init__(self) -> None:
        check_open_interval(self, "analysis", first_fraction=(0, 1), tail_quantile=(0, 0.5))
        check_at_least(self, "analysis", n_outliers=0)


@dataclasses.dataclass(frozen=True)
class FigureConfig:
    """Rendering choices."""

    hist_bins: int
    max_violin_layers: int  # the distribution figure shows at most this many layers
    token_label_chars: int  # outlier token strings are cut to this length

    def __post_init__(self) -> None:
        check_at_least(self, "figures", hist_bins=10, max_violin_layers=2, token_label_chars=4)


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig
    harvest: HarvestConfig
    categories: CategoryConfig
    analysis: AnalysisConfig
    figures: FigureConfig

    def __post_init__(self) -> None:
        ctx = self.harvest.contexts
        for name, c in (("analysis.focus_context", self.analysis.focus_context),
                        ("analysis.contrast_context", self.analysis.contrast_context),
                        ("categories.context", self.categories.context)):
            check(c in ctx, f"{name} ({c}) must be one of harvest.contexts {list(ctx)}")
        # Every truncation must drop some context: the token's full context is longer.
        check(self.data.min_position > max(ctx),
              f"data.min_position ({self.data.min_position}) must exceed the longest "
              f"truncated context ({max(ctx)})")


def load(profile: str) -> Config:
    """The validated configuration of `profile`."""
    return load_profile(Config, CONFIG_DIR, profile)
