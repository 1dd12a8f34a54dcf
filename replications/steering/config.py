"""Configuration of the steering-with-SAEs replication: one frozen dataclass per part.

Values live in `config/default.yaml` (complete) with `smoke.yaml` / `paper.yaml` overrides.

- `docs`, `corpus`, `tokenizer`, `lm`: the stand-in (smoke, default): synthetic anger / calm /
  wedding / ordinary-topic documents (`docs.py`) mixed into the local prose corpus, a BPE
  tokenizer and a GPT-2-shaped LM, trained by the shared scripts (`--writeup steering`).
  `paper` reads GPT-2 XL by name and trains none of them.
- `model`: which LM is steered and at which layer (`blocks.<layer>.hook_resid_pre`).
- `data`: token rows for SAE training, SAE evaluation, feature profiles and the spliced loss
  (paper: a tokenized pretraining set by name).
- `sae`, `sae_run`: the residual-stream SAE (`shared.sae.SAEConfig`) and how the model zoo
  obtains it (`shared.sae_zoo.SAERunConfig`: trained with the shared trainer and activation
  buffer, or loaded from a SAELens dir); `Config.zoo_sae()` hands them to the zoo.
- `sampling`: ActAdd's sampling settings and the batching of rollouts.
- `anger`, `weddings`: the two experiments (prompts, coefficient sweeps, SAE variants).
- `layer_sweep`: both ActAdd vectors at each of several layers (where steering works at all).
- `analysis`, `loss`, `frontier`, `figures`: dense features, spliced loss, Pareto frontiers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from replications.steering.docs import DocsConfig
from shared.config import check, load_profile
from shared.corpus import CorpusConfig
from shared.dashboard_config import DashboardSettings
from shared.lm_train import StandInConfig
from shared.sae import SAEConfig
from shared.sae_zoo import SAEEvalSettings, SAERows, SAERunConfig, SAESite, ZooSAEConfig
from shared.tokenizer import TokenizerConfig

CONFIG_DIR = Path(__file__).parent / "config"
VOCAB_DIR = Path(__file__).parent / "vocab"
WRITEUP = "steering"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The steered LM and the residual-stream site."""

    source: Literal["stand_in", "pretrained"]  # stand_in: the `lm` section, trained in the DAG
    name: str  # pretrained: a TransformerLens / Hugging Face name (gpt2-xl); stand_in: a label
    layer: int  # vectors are added to blocks.<layer>.hook_resid_pre (GPT-2 XL: 20 of 48)
    device: Literal["auto", "cpu", "cuda"]

    def __post_init__(self) -> None:
        check(self.layer >= 0, "model.layer must be non-negative")
        check(bool(self.name), "model.name must be set")

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.layer}.hook_resid_pre"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Token rows: SAE training, held-out rows (SAE evaluation, spliced loss), profiles."""

    dataset: str  # pretrained: a tokenized data set by name; stand_in: "" (the corpus rows)
    dataset_row_len: int  # pretrained: tokens per data-set row (held-out rows keep all of them)
    sae_train_rows: int  # pretrained: data-set rows read for SAE training; stand_in: 0 (all)
    sae_seq_len: int  # SAE training rows: tokens per row, BOS first
    heldout_rows: int  # held-out rows (pretrained: read after the training rows)
    sae_eval_rows: int  # the first held-out rows: SAE frequencies and spliced SAE loss
    loss_rows: int  # the next held-out rows: the steering vectors' spliced LM loss
    profile_rows: int  # training rows whose tokens label features (max-activating tokens)

    def __post_init__(self) -> None:
        check(self.sae_seq_len >= 2, "data.sae_seq_len must be at least 2")
        check(min(self.sae_eval_rows, self.loss_rows, self.profile_rows) >= 1,
              "data.sae_eval_rows, loss_rows and profile_rows must be positive")
        check(self.sae_eval_rows + self.loss_rows <= self.heldout_rows,
              "data.sae_eval_rows + loss_rows must not exceed heldout_rows")
        check(self.sae_train_rows >= 0, "data.sae_train_rows must be non-negative")


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """ActAdd's sampling (TransformerLens `generate`: temperature, then frequency penalty over
    every token so far, then top-p) and the batching of rollouts."""

    temperature: float
    top_p: float
    freq_penalty: float
    new_tokens: int
    n_seeds: int  # completions per (method, coefficient); completion j uses seed + j
    seed: int
    batch_rows: int  # completions per KV-cached generation call
    candidates: int  # top-p fast path: exact whenever these top tokens hold top_p of the mass
    # Cached steps: TransformerLens's KV cache ("hooked"), or shared.decode's static cache in
    # fp32 ("static") or bf16 ("static-bf16"; GPU; benchmarks/results/gpu_check_h200.md).
    decoder: Literal["hooked", "static", "static-bf16"]

    def __post_init__(self) -> None:
        check(self.decoder in ("hooked", "static", "static-bf16"),
              f"sampling.decoder must be hooked, static or static-bf16, got {self.decoder!r}")
        check(self.temperature > 0, "sampling.temperature must be positive")
        check(0 < self.top_p <= 1, "sampling.top_p must lie in (0, 1]")
        check(self.freq_penalty >= 0, "sampling.freq_penalty must be non-negative")
        check(min(self.new_tokens, self.n_seeds, self.batch_rows, self.candidates) >= 1,
              "sampling.new_tokens, n_seeds, batch_rows and candidates must be positive")
        check(self.seed >= 0, "sampling.seed must be non-negative")


def _check_coeffs(coeffs: tuple[float, ...], where: str) -> None:
    check(len(coeffs) >= 2 and coeffs[0] == 0 and all(b > a for a, b in zip(coeffs, coeffs[1:])),
          f"{where} must start at 0 and increase (0 is the unsteered model)")


@dataclasses.dataclass(frozen=True)
class AngerConfig:
    """'Anger' - 'Calm' on "I think you're": the vector against its top SAE feature."""

    positive: str
    negative: str
    prompt: str
    coeff: float  # the write-up's coefficient (circled); the feature's too, x its activation
    vector_coeffs: tuple[float, ...]  # ActAdd coefficients
    feature_coeffs: tuple[float, ...]  # multiples of the feature's activation on the prompt
    # Which feature is "the anger feature": the top non-dense one by activation on the positive
    # prompt's last token (the write-up), or by that activation minus the negative prompt's at
    # the same position (features both prompts share nearly cancel in the vector).
    feature_selection: Literal["activation", "difference"]
    n_top_features: int  # rows of the decomposition table
    vocab: str  # file under vocab/
    n_completions_shown: int

    def __post_init__(self) -> None:
        _check_coeffs(self.vector_coeffs, "anger.vector_coeffs")
        _check_coeffs(self.feature_coeffs, "anger.feature_coeffs")
        check(self.coeff in self.vector_coeffs and self.coeff in self.feature_coeffs,
              "anger.coeff must be one of vector_coeffs and of feature_coeffs (it is circled)")
        check(self.n_top_features >= 1 and self.n_completions_shown >= 1,
              "anger.n_top_features and n_completions_shown must be positive")
        check((VOCAB_DIR / self.vocab).is_file(), f"anger.vocab: no file vocab/{self.vocab}")


@dataclasses.dataclass(frozen=True)
class WeddingsConfig:
    """'I talk about weddings constantly' - 'I do not talk ...': the vector and SAE variants."""

    positive: str
    negative: str
    prompt: str
    coeff: float  # the blog post's coefficient (4)
    vector_coeffs: tuple[float, ...]  # original, SAE-reconstruction, top-k and projected vectors
    handpicked_words: dict[str, int]  # word of the positive prompt -> features kept at its
    #                                      last token (largest non-dense activations)
    handpicked_coeffs: tuple[float, ...]  # multiples of those features' activations
    topk: int  # top features per position of each prompt (the write-up: 10)
    topk_positions: int  # the last positions of the padded prompts (the write-up: 3)
    n_padding_features: int  # features of the padding spaces projected out (the write-up: 2)
    n_top_per_position: int  # rows per position in the decomposition figure
    projected_coeff: float  # completions shown for the projected vector (the write-up: 2.0)
    vocab: str
    n_completions_shown: int

    def __post_init__(self) -> None:
        for name in ("vector_coeffs", "handpicked_coeffs"):
            _check_coeffs(getattr(self, name), f"weddings.{name}")
        check(self.coeff in self.vector_coeffs and self.projected_coeff in self.vector_coeffs,
              "weddings.coeff and projected_coeff must be among vector_coeffs")
        check(len(self.handpicked_words) >= 1 and all(n >= 1 for n in
                                                      self.handpicked_words.values()),
              "weddings.handpicked_words needs words with positive feature counts")
        missing = [w for w in self.handpicked_words if w not in self.positive]
        check(not missing, f"weddings.handpicked_words: {missing[:1]} not in the positive prompt")
        check(min(self.topk, self.topk_positions, self.n_padding_features,
                  self.n_top_per_position, self.n_completions_shown) >= 1,
              "weddings.topk, topk_positions, n_padding_features, n_top_per_position and "
              "n_completions_shown must be positive")
        check((VOCAB_DIR / self.vocab).is_file(), f"weddings.vocab: no file vocab/{self.vocab}")


@dataclasses.dataclass(frozen=True)
class LayerSweepConfig:
    """Both ActAdd vectors at their experiments' coefficients, added at each of these layers in
    turn: where along the model's depth front-position steering still changes completions."""

    layers: tuple[int, ...]
    n_seeds: int  # completions per (experiment, layer), plus as many unsteered
    writeup_layer: int  # the write-up steers GPT-2 XL at layer 20 ...
    writeup_n_layers: int  # ... of 48: the relative depth compared across models

    def __post_init__(self) -> None:
        check(len(self.layers) >= 1 and all(b > a for a, b in zip(self.layers, self.layers[1:]))
              and self.layers[0] >= 0, "layer_sweep.layers must be increasing, non-negative")
        check(self.n_seeds >= 1, "layer_sweep.n_seeds must be positive")
        check(0 <= self.writeup_layer < self.writeup_n_layers,
              "layer_sweep.writeup_layer must be below writeup_n_layers")

    def writeup_depth_layer(self, n_layers: int) -> int:
        """The swept layer nearest the write-up's relative depth in an `n_layers` model."""
        depth = self.writeup_layer / self.writeup_n_layers * n_layers
        return min(self.layers, key=lambda layer: (abs(layer - depth), layer))


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """Dense features and feature labels."""

    dense_frequency: float  # firing on more than this share of held-out tokens: "dense"
    profile_top_tokens: int  # tokens listed per feature (largest mean activation)
    profile_min_count: int  # ... among tokens seen at least this often in the profile rows
    n_contexts: int  # max-activating contexts of the anger feature
    context_before: int
    context_after: int
    n_logit_tokens: int  # direct logit attribution of the anger feature

    def __post_init__(self) -> None:
        check(0 < self.dense_frequency < 1, "analysis.dense_frequency must lie in (0, 1)")
        check(min(self.profile_top_tokens, self.profile_min_count, self.n_contexts,
                  self.n_logit_tokens) >= 1
              and min(self.context_before, self.context_after) >= 0,
              "analysis sizes must be positive")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Spliced LM loss of steered forward passes on held-out pretraining text."""

    batch_rows: int  # (condition, row) pairs per forward pass

    def __post_init__(self) -> None:
        check(self.batch_rows >= 1, "loss.batch_rows must be positive")


@dataclasses.dataclass(frozen=True)
class FrontierConfig:
    """Comparing Pareto frontiers (P(success) up, spliced loss down)."""

    grid_points: int  # loss grid for the mean frontier gap
    dominance_tol: float  # P(success) slack when asking whether a point is dominated

    def __post_init__(self) -> None:
        check(self.grid_points >= 2, "frontier.grid_points must be at least 2")
        check(0 <= self.dominance_tol < 1, "frontier.dominance_tol must lie in [0, 1)")


@dataclasses.dataclass(frozen=True)
class FigureSettings:
    completion_chars: int  # completions are cut to this many characters in the tables
    wrap_chars: int

    def __post_init__(self) -> None:
        check(self.completion_chars >= 20 and self.wrap_chars >= 20, "figure text widths >= 20")


@dataclasses.dataclass(frozen=True)
class Config:
    docs: DocsConfig
    corpus: CorpusConfig
    tokenizer: TokenizerConfig
    lm: StandInConfig
    model: ModelConfig
    data: DataConfig
    sae: SAEConfig
    sae_run: SAERunConfig
    sampling: SamplingConfig
    anger: AngerConfig
    weddings: WeddingsConfig
    layer_sweep: LayerSweepConfig
    analysis: AnalysisConfig
    loss: LossConfig
    frontier: FrontierConfig
    figures: FigureSettings
    dashboard: DashboardSettings

    def __post_init__(self) -> None:
        self.zoo_sae()  # the SAE's settings check themselves (one SAE, room in the buffer)
        check(self.model.layer in self.layer_sweep.layers,
              "layer_sweep.layers must include model.layer")
        if self.model.source == "stand_in":
            m = self.lm.model
            check(self.layer_sweep.layers[-1] < m.n_layers,
                  f"model.layer and layer_sweep.layers must be below lm.model.n_layers "
                  f"({m.n_layers})")
            check(self.sae.d_in == m.d_model,
                  f"sae.d_in ({self.sae.d_in}) must equal lm.model.d_model ({m.d_model})")
            check(self.data.dataset == "", "data.dataset must be empty for the stand-in")
            check(self.data.sae_seq_len == self.tokenizer.seq_len,
                  "data.sae_seq_len must equal tokenizer.seq_len for the stand-in")
            check(m.n_ctx >= self.tokenizer.seq_len, "lm.model.n_ctx must be >= tokenizer.seq_len")
        else:
            check(bool(self.data.dataset), "data.dataset is needed with model.source: pretrained")
            check(self.data.sae_train_rows > 0, "data.sae_train_rows must be positive (pretrained)")
            check(self.data.dataset_row_len % self.data.sae_seq_len == 0,
                  "data.dataset_row_len must be a multiple of data.sae_seq_len")


    def sae_rows(self) -> SAERows:
        """The SAE's rows of the tokens file: training rows cut to `data.sae_seq_len`, the
        first `data.sae_eval_rows` held-out rows to evaluate it."""
        return SAERows(seq_len=self.data.sae_seq_len, eval_rows=self.data.sae_eval_rows)

    def zoo_sae(self) -> ZooSAEConfig:
        """The settings of the write-up's SAE in the model zoo (shared/zoo.smk): the `sae` and
        `sae_run` sections, the steering site, the SAE's rows of `data`, and the dense
        threshold of `analysis` (eval.json's dense share, as the decompositions use it)."""
        return ZooSAEConfig(
            sae=self.sae, run=self.sae_run,
            site=SAESite(model_name=self.model.name, hook_name=self.model.hook_name,
                         device=self.model.device),
            rows=self.sae_rows(),
            evaluation=SAEEvalSettings(dense_frequency=self.analysis.dense_frequency),
        )


def load(profile: str) -> Config:
    """The validated configuration of `profile`."""
    # Seed variants keep `docs`'s seed: the topic documents are part of the stand-in's training text, which stays
    # the same across a seed sweep (the corpus lock pins it).
    return load_profile(Config, CONFIG_DIR, profile, fixed_sections=("docs",))
