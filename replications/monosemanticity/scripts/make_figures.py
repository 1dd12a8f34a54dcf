"""Figures of the monosemanticity replication (everything but the LM loss curve).

    python -m replications.monosemanticity.scripts.make_figures --profile P --sae DIR
        --seed2 DIR --orthogonal DIR --analysis DIR --figure-dir DIR

Recomputes the weight-based analyses (cheap and deterministic) from the SAEs, their
frequencies and W_out (saved by the analyse step), reads the case studies and the training
histories, and writes one PNG + PDF per figure into --figure-dir, named as in
`replications/monosemanticity/pipeline.py`.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from replications.monosemanticity import analysis as A
from replications.monosemanticity import analysis_results as AR
from replications.monosemanticity import case_studies as C
from replications.monosemanticity import plots as P
from replications.monosemanticity import training
from replications.monosemanticity.scripts._common import parser, setup
from shared import pipeline
from shared.cli import add_paths, log, parse_and_setup, run
from shared.config import config_hash
from shared.figures import Provenance, save_figure
from shared.io import load_tensors, read_json
from shared.sae import SAEConfig
from shared.sae_io import load_sae_lens

FIGURES = pipeline.figures("monosemanticity")  # from the manifest, writeup.yaml


def load(sae_dir: Path, threshold: float) -> tuple[A.SAEWeights, A.FrequencySummary]:
    sae, _, _ = load_sae_lens(sae_dir)
    freq, n_tokens = training.load_frequency(sae_dir)
    return A.SAEWeights.from_sae(sae, 0), A.frequency_summary(freq, n_tokens, threshold)


def load_cases(analysis_dir: Path) -> tuple[list[C.CaseStudy], dict[int, str]]:
    meta = read_json(analysis_dir / "case_studies.json")
    tensors = load_tensors(analysis_dir / "case_studies.safetensors")
    cases, vocab = [], {}
    for i, c in enumerate(meta["cases"]):
        vocab |= {int(k): v for k, v in c["vocab"].items()}
        cases.append(C.CaseStudy(
            feature=c["feature"], frequency=c["frequency"], label=c["label"], centre=c["centre"],
            **{name: tensors[f"{i}.{name}"] for name in (
                "context_tokens", "context_acts", "max_acts", "top_token_ids",
                "top_token_effects", "bottom_token_ids", "bottom_token_effects")},
        ))
    return cases, vocab


def dead_cosines(weights: A.SAEWeights, freq: A.FrequencySummary,
                 cluster: A.UltraLowCluster) -> torch.Tensor | None:
    """Cosine of each never-fired feature's encoder vector with the ultra-low mean direction."""
    if cluster.n == 0 or not bool(freq.dead.any()):
        return None
    enc = weights.encoder_vectors()[freq.dead].double()
    return (enc / enc.norm(dim=-1, keepdim=True).clamp_min(1e-12)) @ cluster.mean_direction


def resample_steps(sae: SAEConfig) -> list[int]:
    """Optimiser steps after which resampling was due (as `shared.sae_train.SAETrainer`)."""
    if sae.resample == "none":
        return []
    return [s for s in range(sae.resample_every, sae.n_steps, sae.resample_every)
            if s <= sae.resample_stop]


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0], model=False),
                  "sae", "seed2", "orthogonal", "analysis", "figure_dir")
    args, cfg = parse_and_setup(p, argv, setup)
    settings, thr = cfg.analysis, cfg.analysis.ultra_low_threshold
    provenance = Provenance.make("monosemanticity", args.profile, config_hash(cfg))
    weights, freq = load(args.sae, thr)
    weights2, freq2 = load(args.seed2, thr)
    weights_o, freq_o = load(args.orthogonal, thr)
    W_out = load_tensors(args.analysis / "model.safetensors")["W_out"]
    direction = load_tensors(args.orthogonal / training.DIRECTION_FILE)["direction"]
    metrics = read_json(args.analysis / "metrics.json")
    seed_cos = metrics.get("seed_mean_cosine")
    seed_cos = math.nan if seed_cos is None else float(seed_cos)

    an = AR.analyse_sae(weights, freq, W_out, settings)
    orth = A.orthogonal_retrain_analysis(direction, weights_o, freq_o, settings)
    cases, vocab = load_cases(args.analysis)

    def decode(t: int) -> str:
        return vocab.get(int(t), f"<{t}>")

    histories = {name: read_json(d / "history.json") for name, d in
                 (("main", args.sae), ("seed2", args.seed2), ("orthogonal", args.orthogonal))}
    del weights2, freq2  # the second seed enters the figures through seed_mean_cosine

    figs = {
        "feature_frequency": lambda: P.plot_frequency_histogram(freq),
        "ultra_low_cluster": lambda: P.plot_ultra_low_cluster(
            an.cluster, seed_cos, dead_cosines(weights, freq, an.cluster)),
        "orthogonal_retrain": lambda: P.plot_orthogonal_retrain(freq, an.cluster, orth),
        "neuron_sparsity": lambda: P.plot_neuron_sparsity(an.sparsity),
        "neuron_kurtosis": lambda: P.plot_kurtosis(an.kurtosis,
                                                   cfg.figures.kurtosis_clip_quantile),
        "enc_dec_cosine": lambda: P.plot_enc_dec_cosine(an.enc_dec_cosine),
        "nullspace": lambda: P.plot_nullspace(an.nullspace),
        "case_studies": lambda: P.plot_case_studies(cases, decode,
                                                    cfg.figures.case_max_token_chars,
                                                    cfg.figures.case_fontsize),
        "sae_training": lambda: P.plot_sae_training(
            histories, thr,
            cfg.model.train_eval_rows * (cfg.model.seq_len - int(cfg.buffer.drop_bos)),
            cfg.figures.freq_hist_bin, training.LOG_FREQ_MIN, resample_steps(cfg.sae)),
    }
    missing = sorted(set(FIGURES) - set(figs) - {"lm_loss"})
    assert not missing, f"figures registered but not drawn here: {missing}"
    for name, make in figs.items():
        save_figure(make(), args.figure_dir / f"{name}.png", provenance)
    log(f"{len(figs)} figures -> {args.figure_dir}")


if __name__ == "__main__":
    run(main)
