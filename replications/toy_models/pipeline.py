"""Figures of the toy-models replication (name -> what it shows); read by the Snakefile and DVC."""

FIGURES: dict[str, str] = {
    "tms_geometry": "TMS 5 features / 2 hidden across sparsity: W^T W, directions, norms",
    "tms_dimensionality": "TMS per-feature dimensionality against 1/(1-S)",
    "sae_tms_mmcs_heatmap": "SAE on TMS: MMCS over dictionary width x L1 coefficient",
    "sae_tms_mmcs_vs_width": "SAE on TMS: MMCS against width (the cliff at the true count)",
    "sae_tms_resampling": "SAE on TMS: MMCS against features/dimensions, with and without resampling",
    "tracr_sae_recovery": "SAEs on uncompressed Tracr residual streams: recovery per variable",
    "tracr_compression_accuracy": "Tracr compression: task accuracy against compressed width",
    "tracr_compression_singular_values": "Tracr compression: singular values of the learned W",
}
