"""Every weight analysis of one SAE (`analyse_sae`: `analysis.py` and `neuron_basis.py`) and the
numbers the claims read (`summary_metrics`).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from jaxtyping import Float, Int
from torch import Tensor

from replications.monosemanticity.analysis import (
    DENSE,
    ONE_SPARSE,
    TEN_SPARSE,
    AnalysisSettings,
    FrequencySummary,
    OrthogonalRetrain,
    SAEWeights,
    UltraLowCluster,
    _share,
    ultra_low_cluster,
)
from replications.monosemanticity.neuron_basis import (
    KurtosisComparison,
    NeuronSparsity,
    NullspaceComparison,
    bimodality_coefficient,
    encoder_decoder_cosine,
    kurtosis_comparison,
    neuron_sparsity,
    nullspace_comparison,
    outside_baseline_share,
)

# ---------------------------------------------------------------------------------------------
# Everything about one SAE's weights.


@dataclasses.dataclass(frozen=True)
class SAEAnalysis:
    """All weight-based analyses of one SAE (sections 1 to 4)."""

    frequencies: FrequencySummary
    cluster: UltraLowCluster
    normal_features: Int[Tensor, " n"]  # indices of the non-ultra-low, non-dead features
    sparsity: NeuronSparsity  # over normal_features
    kurtosis: KurtosisComparison  # over normal_features
    enc_dec_cosine: Float[Tensor, " n"]  # over normal_features
    nullspace: NullspaceComparison  # over normal_features


def analyse_sae(
    weights: SAEWeights, frequencies: FrequencySummary, W_out: Float[Tensor, "d_mlp d_model"],
    settings: AnalysisSettings,
) -> SAEAnalysis:
    """Run sections 1-4 on one SAE. Like the write-up, the decoder, kurtosis, cosine and
    null-space analyses use the non-ultra-low features only (dead ones are left out too)."""
    normal = frequencies.normal.nonzero().flatten()
    dec = weights.W_dec[normal]
    return SAEAnalysis(
        frequencies=frequencies,
        cluster=ultra_low_cluster(weights, frequencies.ultra_low, settings),
        normal_features=normal,
        sparsity=neuron_sparsity(dec, settings),
        kurtosis=kurtosis_comparison(dec, settings.seed),
        enc_dec_cosine=encoder_decoder_cosine(weights)[normal],
        nullspace=nullspace_comparison(weights, normal, W_out, settings),
    )


# ---------------------------------------------------------------------------------------------
# Metrics for the claims.


def _median(x: Tensor) -> float:
    return float(x.double().quantile(0.5)) if x.numel() else math.nan


def _mean(x: Tensor) -> float:
    return float(x.double().mean()) if x.numel() else math.nan


def _std(x: Tensor) -> float:
    return float(x.double().std()) if x.numel() > 1 else math.nan


def summary_metrics(
    analysis: SAEAnalysis,
    seed_mean_cosine: float | None,
    orthogonal: OrthogonalRetrain | None,
    cofiring: float | None,
) -> dict[str, float]:
    """Every number the claims need, flat. Names carry no dots (claims use dotted paths);
    NaN where a quantity is undefined (e.g. no ultra-low features), which write_json stores
    as null and the scorecard shows as missing."""
    fr, cl, sp, ku, ns = (analysis.frequencies, analysis.cluster, analysis.sparsity,
                          analysis.kurtosis, analysis.nullspace)
    gauss_p99 = float(torch.quantile(ku.gaussian, 0.99)) if ku.gaussian.numel() else math.nan
    random_std = _std(ns.random)
    out: dict[str, float] = {
        "n_features": float(fr.freqs.numel()),
        "n_eval_tokens": float(fr.n_tokens),
        "dead_fraction": fr.dead_fraction,
        "ultra_low_fraction": fr.ultra_low_fraction,
        "normal_fraction": _share(fr.normal),
        "median_log10_frequency_normal": _median(fr.freqs[fr.normal].log10()),
        # The write-up's histogram of log10 frequency is "clearly bimodal" (ultra-low + normal);
        # over the features that fired (dead ones have no log frequency).
        "log10_frequency_bimodality": bimodality_coefficient(fr.log10_freqs),
        "ultra_low_n": float(cl.n),
        "ultra_low_cos_gt_095_share": cl.cos_gt_share,
        "ultra_low_median_cos_with_mean": _median(cl.enc_cos_with_mean),
        "ultra_low_decoder_median_cos_with_mean": _median(cl.dec_cos_with_mean),
        "ultra_low_encoder_top_sv_fve": float(cl.enc_spectrum[0]),
        "ultra_low_decoder_top_sv_fve": float(cl.dec_spectrum[0]),
        "ultra_low_gaussian_top_sv_fve": float(cl.gaussian_spectrum[0]),
        "ultra_low_median_projection": _median(cl.projections),
        "dense_share": sp.share(DENSE),
        "one_sparse_share": sp.share(ONE_SPARSE),
        "ten_sparse_share": sp.share(TEN_SPARSE),
        "median_kurtosis": _median(ku.real),
        "median_gaussian_kurtosis": _median(ku.gaussian),
        "kurtosis_excess_over_gaussian": _median(ku.real) - _median(ku.gaussian),
        "kurtosis_above_gaussian_p99_share": _share(ku.real > gauss_p99),
        "max_kurtosis": float(ku.real.max()) if ku.real.numel() else math.nan,
        "median_enc_dec_cosine": _median(analysis.enc_dec_cosine),
        "enc_dec_cosine_bimodality": bimodality_coefficient(analysis.enc_dec_cosine),
        "nullspace_share_mean_enc": _mean(ns.enc),
        "nullspace_share_mean_dec": _mean(ns.dec),
        "nullspace_share_std_enc": _std(ns.enc),
        "nullspace_share_std_dec": _std(ns.dec),
        "nullspace_random_mean": _mean(ns.random),
        "nullspace_random_std": random_std,
        "nullspace_random_expected_mean": ns.expected_random_mean,
        "nullspace_random_expected_std": ns.expected_random_std,
        "nullspace_std_ratio_enc": _std(ns.enc) / random_std,
        "nullspace_std_ratio_dec": _std(ns.dec) / random_std,
        # Random directions fall outside their own central 99% by construction 1% of the time.
        "nullspace_outside_random_p99_share_enc": outside_baseline_share(ns.enc, ns.random),
        "nullspace_outside_random_p99_share_dec": outside_baseline_share(ns.dec, ns.random),
        "seed_mean_cosine": math.nan if seed_mean_cosine is None else seed_mean_cosine,
        "ultra_low_max_cofiring_share": math.nan if cofiring is None else cofiring,
    }
    if orthogonal is not None:
        out |= {
            "orthogonal_retrain_ultra_low_fraction": orthogonal.frequencies.ultra_low_fraction,
            "orthogonal_retrain_dead_fraction": orthogonal.frequencies.dead_fraction,
            "orthogonal_retrain_cos_gt_095_share": orthogonal.cluster.cos_gt_share,
            "orthogonal_retrain_median_cos_with_mean":
                _median(orthogonal.cluster.enc_cos_with_mean),
            "orthogonal_new_vs_old_mean_cosine": orthogonal.old_vs_new_mean_cosine,
            "orthogonal_max_abs_enc_cos_with_old": orthogonal.max_abs_enc_cos_with_old,
        }
    else:
        out |= {k: math.nan for k in (
            "orthogonal_retrain_ultra_low_fraction", "orthogonal_retrain_dead_fraction",
            "orthogonal_retrain_cos_gt_095_share", "orthogonal_retrain_median_cos_with_mean",
            "orthogonal_new_vs_old_mean_cosine", "orthogonal_max_abs_enc_cos_with_old")}
    return out
