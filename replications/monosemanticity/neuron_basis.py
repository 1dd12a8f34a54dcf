"""Decoder rows in the neuron basis (write-up sections 3-4): how sparse each is over neurons
(dense, 1-sparse, 10-ish-sparse), their excess kurtosis against Gaussian rows, the cosine of
each feature's encoder and decoder vectors, and the share of each in the null space of W_out
against random directions. Shapes and settings as in `analysis.py`.
"""

from __future__ import annotations

import dataclasses
import math

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from replications.monosemanticity.analysis import (
    DENSE,
    ONE_SPARSE,
    TEN_SPARSE,
    AnalysisSettings,
    SAEWeights,
    _share,
    _unit,
    sub_generator,
)
from shared.config import check

# ---------------------------------------------------------------------------------------------
# 3. Neuron-basis sparsity and kurtosis of decoder rows.


@dataclasses.dataclass(frozen=True)
class NeuronSparsity:
    """Per-feature fraction of the decoder row's squared norm in its top neurons, and class."""

    fve_top_1: Float[Tensor, " n"]
    fve_next_9: Float[Tensor, " n"]
    classes: Int[Tensor, " n"]  # DENSE, ONE_SPARSE or TEN_SPARSE
    settings: AnalysisSettings

    @property
    def fve_top_10(self) -> Float[Tensor, " n"]:
        return self.fve_top_1 + self.fve_next_9

    def share(self, cls: int) -> float:
        return _share(self.classes == cls)


def neuron_sparsity(rows: Float[Tensor, "n d_mlp"], settings: AnalysisSettings) -> NeuronSparsity:
    """Classify decoder rows (in the neuron basis) as dense, 1-sparse or 10-ish-sparse.

    fve_top_1 / fve_next_9: share of the row's squared norm in its largest neuron / the next
    9. Dense: fve_top_10 < 0.35; 1-sparse: fve_top_1 > 0.35 and fve_next_9 < 0.1; the rest
    10-ish-sparse (write-up: 92.1 / 3.9 / 4.0 %). The write-up uses decoder rows, being closer
    to the feature's 'true' direction than the interference-aware encoder.
    """
    check(rows.shape[-1] >= 10, "neuron_sparsity needs at least 10 neurons")
    sq = rows.double().pow(2)
    top = sq.topk(10, dim=-1).values / sq.sum(-1, keepdim=True).clamp_min(1e-300)
    top_1, next_9 = top[:, 0], top[:, 1:].sum(-1)
    one_sparse = (top_1 > settings.one_sparse_min_fve_top_1) & (
        next_9 < settings.one_sparse_max_fve_next_9)
    dense = (top_1 + next_9) < settings.dense_max_fve_top_10
    classes = torch.full_like(top_1, TEN_SPARSE, dtype=torch.long)
    classes[one_sparse] = ONE_SPARSE
    classes[dense] = DENSE  # disjoint from 1-sparse: fve_top_1 > 0.35 implies fve_top_10 > 0.35
    return NeuronSparsity(top_1, next_9, classes, settings)


def excess_kurtosis(rows: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
    """Excess kurtosis of each row over its entries: m4 / m2^2 - 3 (mean-centred, biased
    moments, as scipy.stats.kurtosis). 0 for Gaussian entries, large for neuron-sparse rows."""
    x = rows.double()
    centred = x - x.mean(-1, keepdim=True)
    m2 = centred.pow(2).mean(-1)
    m4 = centred.pow(4).mean(-1)
    return m4 / m2.pow(2).clamp_min(1e-300) - 3.0


@dataclasses.dataclass(frozen=True)
class KurtosisComparison:
    """Neuron kurtosis of decoder rows and of Gaussian rows of the same shape."""

    real: Float[Tensor, " n"]
    gaussian: Float[Tensor, " n"]


def kurtosis_comparison(rows: Float[Tensor, "n d_mlp"], seed: int) -> KurtosisComparison:
    """Kurtosis of each decoder row vs a Gaussian baseline (a random rotation makes any row's
    entries Gaussian, so the baseline is what an unprivileged basis would give)."""
    gauss = torch.randn(rows.shape, generator=sub_generator(seed, "kurtosis gaussian"),
                        dtype=torch.float64)
    return KurtosisComparison(excess_kurtosis(rows), excess_kurtosis(gauss))


# ---------------------------------------------------------------------------------------------
# 4. Encoder vs decoder, and the null space of W_out.


def encoder_decoder_cosine(weights: SAEWeights) -> Float[Tensor, " d_sae"]:
    """Cosine between each feature's encoder vector and decoder row (write-up median 0.5)."""
    return einops.einsum(_unit(weights.encoder_vectors().double()), _unit(weights.W_dec.double()),
                         "d_sae d_in, d_sae d_in -> d_sae")


# Sarle's bimodality coefficient of a uniform distribution: above it a sample is read as
# bimodal (a unimodal Gaussian gives 1/3).
BIMODALITY_THRESHOLD = 5.0 / 9.0


def bimodality_coefficient(x: Float[Tensor, " n"]) -> float:
    """Sarle's sample bimodality coefficient (g^2 + 1) / (k + 3 (n-1)^2 / ((n-2)(n-3))), with
    g the sample skewness and k the sample excess kurtosis (bias-corrected); NaN for n < 4."""
    n = x.numel()
    if n < 4:
        return math.nan
    c = x.double() - x.double().mean()
    m2, m3, m4 = c.pow(2).mean(), c.pow(3).mean(), c.pow(4).mean()
    if float(m2) <= 0:
        return math.nan
    g1 = m3 / m2.pow(1.5)
    g = math.sqrt(n * (n - 1)) / (n - 2) * float(g1)
    k = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * float(m4 / m2.pow(2) - 3.0) + 6.0)
    return (g * g + 1.0) / (k + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def outside_baseline_share(
    values: Float[Tensor, " n"], baseline: Float[Tensor, " n_base"], coverage: float = 0.99,
) -> float:
    """Share of `values` outside the central `coverage` interval of `baseline` (by chance, for
    values drawn like the baseline: 1 - coverage)."""
    if values.numel() == 0 or baseline.numel() == 0:
        return math.nan
    tail = (1.0 - coverage) / 2
    lo, hi = torch.quantile(baseline.double(), torch.tensor([tail, 1.0 - tail],
                                                            dtype=torch.float64))
    v = values.double()
    return float(((v < lo) | (v > hi)).double().mean())


def row_space_basis(W_out: Float[Tensor, "d_mlp d_model"]) -> Float[Tensor, "d_mlp rank"]:
    """Orthonormal basis of the neuron-space directions W_out does not send to zero (its
    column space); the null space is their (d_mlp - rank)-dim orthogonal complement."""
    U, S, _ = torch.linalg.svd(W_out.double(), full_matrices=False)
    tol = S.max() * max(W_out.shape) * torch.finfo(torch.float64).eps
    return U[:, S > tol]


def nullspace_share(
    vectors: Float[Tensor, "n d_mlp"], W_out: Float[Tensor, "d_mlp d_model"]
) -> Float[Tensor, " n"]:
    """Share of each vector's squared norm in the null space of W_out (v @ W_out = 0 there):
    the part an MLP-activation direction contributes nothing to the residual stream with."""
    basis = row_space_basis(W_out)
    v = vectors.double()
    kept = einops.einsum(v, basis, "n d_mlp, d_mlp rank -> n rank").pow(2).sum(-1)
    return 1.0 - kept / v.pow(2).sum(-1).clamp_min(1e-300)


def random_nullspace_moments(d_mlp: int, rank: int) -> tuple[float, float]:
    """Exact mean and std of the null-space share of a uniformly random direction: the share
    is Beta((d_mlp - rank)/2, rank/2); gelu-1l (2048, 512) gives 0.75 and 0.0135."""
    a, b = (d_mlp - rank) / 2, rank / 2
    return a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))


@dataclasses.dataclass(frozen=True)
class NullspaceComparison:
    """Null-space shares of encoder vectors, decoder rows and random directions."""

    enc: Float[Tensor, " n"]
    dec: Float[Tensor, " n"]
    random: Float[Tensor, " n_random"]
    d_mlp: int
    rank: int

    @property
    def expected_random_mean(self) -> float:
        return random_nullspace_moments(self.d_mlp, self.rank)[0]

    @property
    def expected_random_std(self) -> float:
        return random_nullspace_moments(self.d_mlp, self.rank)[1]


def nullspace_comparison(
    weights: SAEWeights, features: Int[Tensor, " n"], W_out: Float[Tensor, "d_mlp d_model"],
    settings: AnalysisSettings,
) -> NullspaceComparison:
    """Null-space shares of the chosen features' encoder and decoder vectors, and of
    `n_random_baseline` random unit vectors (write-up baseline: mean 0.75, std 0.013)."""
    d_mlp = W_out.shape[0]
    check(weights.d_in == d_mlp, f"SAE d_in {weights.d_in} != W_out's d_mlp {d_mlp}")
    rand = torch.randn(settings.n_random_baseline, d_mlp, dtype=torch.float64,
                       generator=sub_generator(settings.seed, "nullspace random"))
    return NullspaceComparison(
        enc=nullspace_share(weights.encoder_vectors()[features], W_out),
        dec=nullspace_share(weights.W_dec[features], W_out),
        random=nullspace_share(rand, W_out),
        d_mlp=d_mlp,
        rank=row_space_basis(W_out).shape[1],
    )
