"""Analyse the three SAEs: frequencies, the ultra-low cluster, neuron sparsity, kurtosis,
encoder vs decoder, the null space of W_out, seeds, the orthogonal retrain, case studies.

    python -m replications.monosemanticity.scripts.analyse --profile P --model SPEC
        --tokens FILE --sae DIR --seed2 DIR --orthogonal DIR --out-dir DIR [--threads N]

Writes into --out-dir: metrics.json (every `analysis.*` number the claims read),
case_studies.safetensors + case_studies.json (top-activating contexts and logit effects of the
write-up's 'first 8 non-ultra-low features', with the tokens decoded) and model.safetensors
(the model's W_out, which the figures need for the null-space analysis).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from replications.monosemanticity import analysis as A
from replications.monosemanticity import analysis_results as AR
from replications.monosemanticity import case_studies as C
from replications.monosemanticity import training
from replications.monosemanticity.scripts._common import parser, setup
from shared.cli import add_paths, log, parse_and_setup, run, user_errors
from shared.io import load_tensors, read_json, save_tensors, write_json
from shared.sae_io import load_sae_lens


def load_sae(sae_dir: Path, threshold: float) -> tuple[A.SAEWeights, A.FrequencySummary]:
    sae, _, _ = load_sae_lens(sae_dir)
    freq, n_tokens = training.load_frequency(sae_dir)
    return A.SAEWeights.from_sae(sae, 0), A.frequency_summary(freq, n_tokens, threshold)


def case_payload(cases: list[C.CaseStudy], decode) -> tuple[dict, dict]:
    """Case studies as tensors and JSON (decoded token strings, for the figure and readers)."""
    tensors, meta = {}, []
    for i, c in enumerate(cases):
        for name in ("context_tokens", "context_acts", "max_acts", "top_token_ids",
                     "top_token_effects", "bottom_token_ids", "bottom_token_effects"):
            tensors[f"{i}.{name}"] = getattr(c, name)
        ids = {int(t) for t in c.context_tokens.flatten().tolist() if t >= 0}
        ids |= {int(t) for t in c.top_token_ids.tolist() + c.bottom_token_ids.tolist()}
        meta.append({"feature": c.feature, "frequency": c.frequency, "label": c.label,
                     "centre": c.centre, "vocab": {str(t): decode(t) for t in sorted(ids)},
                     "top_tokens": [decode(int(t)) for t in c.top_token_ids],
                     "bottom_tokens": [decode(int(t)) for t in c.bottom_token_ids]})
    return tensors, {"cases": meta, "logit_note": C.LOGIT_NOTE}


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0]), "sae", "seed2", "orthogonal", "out_dir")
    args, cfg = parse_and_setup(p, argv, setup)
    t0 = time.perf_counter()
    settings, thr = cfg.analysis, cfg.analysis.ultra_low_threshold
    with user_errors():
        model = training.load_lm(args.model, cfg.model.device)
        tokens = training.load_token_rows(args.tokens, cfg)
        weights, freq = load_sae(args.sae, thr)
        weights2, freq2 = load_sae(args.seed2, thr)
        weights_o, freq_o = load_sae(args.orthogonal, thr)
        old_direction = load_tensors(args.orthogonal / training.DIRECTION_FILE)["direction"]
        direction_info = read_json(args.orthogonal / "direction.json")
    layer = int(cfg.model.hook_name.split(".")[1])
    W_out = model.blocks[layer].mlp.W_out.detach().cpu().float()  # [d_mlp, d_model]
    W_U = model.W_U.detach().cpu().float()
    # Processed weights fold the final LayerNorm's scale into W_U (LNPre): nothing to apply.
    ln_w = getattr(model.ln_final, "w", None)
    ln_w = None if ln_w is None else ln_w.detach().cpu().float()

    main_an = AR.analyse_sae(weights, freq, W_out, settings)
    cluster2 = A.ultra_low_cluster(weights2, freq2.ultra_low, settings)
    seed_cos = (A.direction_cosine(main_an.cluster.mean_direction, cluster2.mean_direction)
                if main_an.cluster.n and cluster2.n else math.nan)
    orth = A.orthogonal_retrain_analysis(old_direction, weights_o, freq_o, settings)
    acts_fn = A.hooked_acts_fn(model, cfg.model.hook_name)
    cofire, cofire_seq, cofire_pos = A.max_cluster_cofiring(
        tokens.eval, acts_fn, weights, freq.ultra_low, cfg.case_studies.batch_size)
    features = C.select_case_features(freq, cfg.case_studies)
    cases = C.case_studies(weights, freq, features, tokens.eval, acts_fn, W_out, W_U, ln_w,
                           cfg.case_studies, settings) if len(features) else []

    metrics = AR.summary_metrics(main_an, seed_cos, orth, cofire)
    # The stand-in's never-fired features belong to the cluster: their encoder vectors point
    # along the ultra-low mean direction too.
    dead = freq.dead.nonzero().flatten()
    if len(dead) and main_an.cluster.n:
        enc = weights.encoder_vectors()[dead].double()
        dead_cos = (enc / enc.norm(dim=-1, keepdim=True).clamp_min(1e-12)) \
            @ main_an.cluster.mean_direction
        dead_median_cos = float(dead_cos.median())
    else:
        dead_median_cos = math.nan
    metrics |= {
        "below_threshold_fraction": freq.dead_fraction + freq.ultra_low_fraction,
        "dead_median_cos_with_ultra_low_mean": dead_median_cos,
        "ultra_low_enc_over_dec_top_sv_fve": (float(main_an.cluster.enc_spectrum[0])
                                              / float(main_an.cluster.dec_spectrum[0])
                                              if main_an.cluster.n else math.nan),
        "seed2_ultra_low_fraction": freq2.ultra_low_fraction,
        "seed2_dead_fraction": freq2.dead_fraction,
        "seed2_ultra_low_cos_gt_095_share": cluster2.cos_gt_share,
        "orthogonal_direction_from_ultra_low": float(bool(direction_info["from_ultra_low"])),
        "orthogonal_direction_n_features": float(direction_info["n_features"]),
        "ultra_low_max_cofiring_seq": float(cofire_seq),
        "ultra_low_max_cofiring_pos": float(cofire_pos),
        "n_case_studies": float(len(cases)),
    }
    decode = (lambda t: model.tokenizer.decode([t])) if model.tokenizer is not None else str
    tensors, meta = case_payload(cases, decode)
    meta["orthogonal_direction_rule"] = direction_info["rule"]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    save_tensors(args.out_dir / "case_studies.safetensors",
                 tensors or {"empty": torch.zeros(1)})
    write_json(args.out_dir / "case_studies.json", meta)
    save_tensors(args.out_dir / "model.safetensors", {"W_out": W_out})
    write_json(args.out_dir / "metrics.json", metrics)
    log(f"{time.perf_counter() - t0:.0f} s: ultra-low {metrics['ultra_low_fraction']:.3f},"
        f" dense {metrics['dense_share']:.3f}, median enc-dec cos "
        f"{metrics['median_enc_dec_cosine']:.2f}, seed cos {seed_cos:.2f} -> {args.out_dir}")


if __name__ == "__main__":
    run(main)
