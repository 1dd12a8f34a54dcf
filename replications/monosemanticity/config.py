"""Configuration of the monosemanticity replication: one frozen dataclass per part.

Values live in `config/default.yaml` (complete) with `smoke.yaml` / `paper.yaml` overrides.

- `corpus`, `tokenizer`, `lm`: the stand-in language model trained inside the DAG (smoke and
  default; read by the shared scripts `shared.scripts.{build_corpus,train_tokenizer,train_lm}`
  with `--writeup monosemanticity`). The paper profile does not train anything here: it reads
  `gelu-1l` and `NeelNanda/c4-code-tokenized-2b` by name (`model`).
- `model`: which LM the SAEs read (the stand-in or a pretrained name), where, and how many
  token rows go to SAE training and to evaluation.
- `sae`: the SAE and its optimisation (`shared.sae.SAEConfig`); `buffer`: the shuffled
  activation buffer; `train`: logging, evaluation and checkpoint cadence of the SAE runs.
- `second_seed`, `orthogonal`: the two extra SAEs of the write-up (another seed; one held
  orthogonal to the first SAE's ultra-low direction).
- `analysis`, `case_studies`, `figures`: the analyses of `analysis.py` and their figures.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from replications.monosemanticity.analysis import AnalysisSettings
from replications.monosemanticity.case_studies import CaseStudySettings
from shared.config import check, load_profile
from shared.corpus import CorpusConfig
from shared.dashboard_config import DashboardSettings
from shared.lm_train import StandInConfig
from shared.sae import SAEConfig
from shared.tokenizer import TokenizerConfig

CONFIG_DIR = Path(__file__).parent / "config"
WRITEUP = "monosemanticity"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The LM whose MLP activations the SAEs read, and the token rows they see."""

    source: Literal["stand_in", "pretrained"]  # stand_in: the `lm` section, trained in the DAG
    name: str  # pretrained: a TransformerLens / Hugging Face name (gelu-1l); stand_in: a label
    dataset: str  # pretrained: a tokenized data set by name; stand_in: "" (the corpus rows)
    dataset_row_len: int  # pretrained: tokens per data-set row, cut into rows of seq_len
    hook_name: str  # the MLP activations (after the non-linearity)
    seq_len: int  # tokens per row, BOS first
    eval_rows: int  # held-out rows: final firing frequencies, analyses, case studies
    loss_eval_rows: int  # the first of those: final loss recovered, L0, MSE (spliced runs)
    train_eval_rows: int  # the first of those, evaluated periodically during SAE training
    train_rows: int  # rows the activation buffer cycles through (0: every training row there is)
    # Training rows added to the held-out rows for the final firing frequencies: the last ones,
    # which the buffer (reading rows in order from the first) does not reach in a default run.
    # The stand-in's 229k held-out tokens put the floor at 4e-6; the write-up's cluster sits at
    # 1e-5 to 1e-4, so frequencies need millions of tokens (the reference code used training rows).
    frequency_train_rows: int
    data_seed: int  # pretrained: shuffles the data set's rows before the held-out split
    device: Literal["auto", "cpu", "cuda"]

    def __post_init__(self) -> None:
        check(self.seq_len >= 2, "model.seq_len must be at least 2")
        check(0 < self.train_eval_rows <= self.eval_rows,
              "model.train_eval_rows must lie in (0, eval_rows]")
        check(0 < self.loss_eval_rows <= self.eval_rows,
              "model.loss_eval_rows must lie in (0, eval_rows]")
        check(self.train_rows >= 0, "model.train_rows must be non-negative")
        check(self.frequency_train_rows >= 0, "model.frequency_train_rows must be non-negative")
        if self.source == "pretrained":
            check(bool(self.name) and bool(self.dataset),
                  "model.name and model.dataset are needed with source: pretrained")
            check(self.dataset_row_len % self.seq_len == 0,
                  "model.dataset_row_len must be a multiple of seq_len")
        else:
            check(self.dataset == "", "model.dataset must be empty with source: stand_in")


@dataclasses.dataclass(frozen=True)
class BufferSettings:
    """The shuffled activation buffer (hook, batch size and seed come from model and sae)."""

    n_activations: int  # write-up: 384 x 4096 (about 1.57M), refilled when half served
    rows_per_batch: int  # prompts per model forward pass when refilling (reference: 512)
    drop_bos: bool  # leave position 0 out of SAE training and keep it clean when splicing

    def __post_init__(self) -> None:
        check(self.n_activations > 0 and self.rows_per_batch > 0,
              "buffer.n_activations and rows_per_batch must be positive")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Cadence of an SAE run: logged rows, periodic evaluations, checkpoints."""

    log_every: int  # training loss / L0 rows in the history
    eval_every: int  # loss recovered and frequencies on train_eval_rows; a multiple of log_every
    checkpoint_every: int
    precision: Literal["fp32", "tf32", "bf16"]
    eval_batch_rows: int  # rows per forward pass in evaluations

    def __post_init__(self) -> None:
        check(self.log_every >= 1 and self.eval_every % self.log_every == 0,
              "train.eval_every must be a positive multiple of log_every")
        check(self.eval_every >= 1 and self.checkpoint_every >= 1 and self.eval_batch_rows >= 1,
              "train.eval_every, checkpoint_every and eval_batch_rows must be positive")


@dataclasses.dataclass(frozen=True)
class SecondSeed:
    """The SAE trained again with another seed (write-up: same ultra-low direction, cos 0.96)."""

    seed: int

    def __post_init__(self) -> None:
        check(self.seed >= 0, "second_seed.seed must be non-negative")


@dataclasses.dataclass(frozen=True)
class OrthogonalSettings:
    """The SAE retrained orthogonal to the first SAE's ultra-low mean encoder direction.

    The direction is the unit mean of the first SAE's ultra-low encoder vectors when it has at
    least `min_cluster` ultra-low features. Otherwise (a stand-in SAE may form no cluster)
    the fallback is the unit mean encoder vector of its `fallback_fraction` rarest firing
    (non-dead) features: the closest analogue, recorded as such in the metrics.
    """

    min_cluster: int
    fallback_fraction: float

    def __post_init__(self) -> None:
        check(self.min_cluster >= 1, "orthogonal.min_cluster must be at least 1")
        check(0 < self.fallback_fraction <= 1, "orthogonal.fallback_fraction must lie in (0, 1]")


@dataclasses.dataclass(frozen=True)
class FigureSettings:
    """Rendering choices."""

    kurtosis_clip_quantile: float  # linear kurtosis histogram clipped here (write-up clipped)
    case_max_token_chars: int
    case_fontsize: float
    freq_hist_bin: float  # log10-frequency bin width in the over-training heat map

    def __post_init__(self) -> None:
        check(0.5 <= self.kurtosis_clip_quantile <= 1, "kurtosis_clip_quantile in [0.5, 1]")
        check(self.case_max_token_chars >= 4 and self.case_fontsize > 0, "bad case-study style")
        check(0 < self.freq_hist_bin <= 1, "freq_hist_bin must lie in (0, 1]")


@dataclasses.dataclass(frozen=True)
class Config:
    corpus: CorpusConfig
    tokenizer: TokenizerConfig
    lm: StandInConfig
    model: ModelConfig
    sae: SAEConfig
    buffer: BufferSettings
    train: TrainSettings
    second_seed: SecondSeed
    orthogonal: OrthogonalSettings
    analysis: AnalysisSettings
    case_studies: CaseStudySettings
    figures: FigureSettings
    dashboard: DashboardSettings

    def __post_init__(self) -> None:
        check(self.second_seed.seed != self.sae.seed, "second_seed.seed must differ from sae.seed")
        self.sae.check_one_per_run("buffer", self.buffer.n_activations)
        check(self.train.eval_every <= max(1, self.sae.n_steps) or self.sae.n_steps == 0,
              "train.eval_every must not exceed sae.n_steps")
        if self.model.source == "stand_in":
            check(self.sae.d_in == self.lm.model.d_mlp,
                  f"sae.d_in ({self.sae.d_in}) must equal lm.model.d_mlp ({self.lm.model.d_mlp})")
            check(self.model.seq_len == self.tokenizer.seq_len,
                  "model.seq_len must equal tokenizer.seq_len for the stand-in")
            check(self.lm.model.n_ctx >= self.model.seq_len, "lm.model.n_ctx must be >= seq_len")
        check(self.model.hook_name.endswith("mlp.hook_post"),
              "model.hook_name must be an MLP activation (…mlp.hook_post)")


def load(profile: str) -> Config:
    """The validated configuration of `profile`."""
    return load_profile(Config, CONFIG_DIR, profile)
