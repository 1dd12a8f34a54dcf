"""SAE-on-TMS figures and claim metrics.

Figure 1: MMCS heatmap over SAE width (multiple of F) x L1 coefficient.
Figure 2: MMCS against width multiple, one line per L1, the true feature count dashed at 1.0.
Figure 3: MMCS against the TMS's F/H ratio, without and with resampling (best L1, seed mean).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from replications.toy_models.sae_tms import (
    best_seed_mean_mmcs,
    resampling_metrics,
    sweep_metrics,
)
from replications.toy_models.scripts._common import load_config, parser, provenance
from shared.cli import run
from shared.figures import PALETTE, apply_style, save_figure
from shared.io import read_json, write_json

MODE_LABELS = {"none": "no resampling", "reinit": "resampling (re-init)",
               "anthropic": "resampling (Anthropic, loss-weighted)"}


def heatmap_figure(sweep: dict[str, Any]) -> plt.Figure:
    """Rows: width multiples; columns: L1 coefficients; each cell: seed-mean MMCS."""
    scores = np.array(sweep["mmcs"]).mean(-1)  # [n_widths, n_l1], mean over seeds
    fig, ax = plt.subplots(figsize=(1.0 * scores.shape[1] + 2.6, 0.45 * scores.shape[0] + 1.6))
    im = ax.imshow(scores, cmap="viridis", vmin=min(0.5, scores.min()), vmax=1.0, aspect="auto")
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            ax.text(j, i, f"{scores[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if scores[i, j] > 0.8 else "white")
    ax.set_xticks(range(scores.shape[1]), [f"{c:g}" for c in sweep["l1_coeffs"]])
    ax.set_yticks(range(scores.shape[0]), [f"{m:g} ({w})" for m, w in
                                           zip(sweep["width_multiples"], sweep["widths"])])
    true_row = sweep["width_multiples"].index(1.0)
    ax.axhline(true_row - 0.5, color="white", lw=1.2, ls="--")
    ax.axhline(true_row + 0.5, color="white", lw=1.2, ls="--")
    ax.grid(False)
    ax.set_xlabel("L1 coefficient")
    ax.set_ylabel("SAE width / F  (width)")
    ax.set_title(f"SAE MMCS (mean of {sweep['n_seeds']} seeds), TMS {sweep['n_features']} "
                 f"features in {sweep['n_hidden']} dims\n({sweep['n_represented']} represented; "
                 "dashed: width = F)", fontsize=10)
    fig.colorbar(im, ax=ax, label="MMCS")
    return fig


def width_figure(sweep: dict[str, Any]) -> plt.Figure:
    """Seed-mean MMCS against width multiple per L1 (seeds as faint points), best over L1 in
    black, dashed line at width = F."""
    per_seed = np.array(sweep["mmcs"])  # [width, l1, seed]
    scores = per_seed.mean(-1)
    mults = np.array(sweep["width_multiples"])
    n_l1 = scores.shape[1]
    fig, ax = plt.subplots(figsize=(5.4, 3.7))
    ax.axvline(1.0, color="0.3", ls="--", lw=1.0, label="width = true feature count F")
    for j, c in enumerate(sweep["l1_coeffs"]):
        color = PALETTE[j % len(PALETTE)]
        # Offset L1 values a little along x so their seed points stay distinguishable.
        x = mults * 2 ** (0.03 * (j - (n_l1 - 1) / 2))
        ax.plot(x, scores[:, j], marker="o", ms=3.5, lw=1.2, color=color, label=f"L1 = {c:g}")
        for xi, pts in zip(x, per_seed[:, j]):
            ax.scatter([xi] * len(pts), pts, s=7, color=color, alpha=0.3, linewidths=0)
    ax.plot(mults, scores.max(1), color="black", lw=2.0, alpha=0.6, label="best L1 (seed mean)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(mults, [f"{m:g}" for m in mults])
    ax.minorticks_off()
    ax.set_ylim(min(0.4, per_seed.min() - 0.05), 1.03)
    ax.set_xlabel("SAE width / number of true features F  (log scale)")
    ax.set_ylabel(f"MMCS (mean of {sweep['n_seeds']} seeds; points: seeds)")
    ax.set_title(f"The cliff at width = F (TMS {sweep['n_features']} features in "
                 f"{sweep['n_hidden']} dims)", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    return fig


def resampling_figure(study: dict[str, Any]) -> plt.Figure:
    """Best-over-L1 seed-mean MMCS (with per-seed points) against F/H for every mode."""
    ratios = np.array(study["ratios"], dtype=float)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    n_modes = len(study["modes"])
    for m, mode in enumerate(study["modes"]):
        means, stds, seeds = [], [], []
        for entry in study["per_ratio"]:
            mean, std, k = best_seed_mean_mmcs(entry, mode)
            means.append(mean)
            stds.append(std)
            seeds.append(entry[f"mmcs_{mode}"][int(k)])
        # Offset the modes a little along x so their seed points do not overlap.
        x = ratios * 2 ** (0.06 * (m - (n_modes - 1) / 2))
        color = PALETTE[m % len(PALETTE)]
        ax.errorbar(x, means, yerr=stds, marker="o", ms=4, lw=1.5, capsize=3, color=color,
                    label=MODE_LABELS.get(mode, mode))
        for xi, pts in zip(x, seeds):
            ax.scatter([xi] * len(pts), pts, s=9, color=color, alpha=0.4, linewidths=0)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ratios, [f"{r:g}" for r in ratios])
    ax.minorticks_off()
    ax.set_ylim(None, 1.03)
    labels = ", ".join(f"{e['n_represented']}/{e['n_features']}" for e in study["per_ratio"])
    n_hidden = study["per_ratio"][0]["n_hidden"]
    ax.set_xlabel(f"features / hidden dims of the TMS (F/H, H = {n_hidden})"
                  f"\nrepresented features: {labels}")
    ax.set_ylabel("MMCS (best L1; mean ± sd over seeds)")
    ax.set_title("SAE of width = represented features: effect of resampling", fontsize=10)
    ax.legend(loc="best", fontsize=7)
    return fig


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0], training=False)
    p.add_argument("--sweep", type=Path, required=True, help="sae_tms_sweep results (.json)")
    p.add_argument("--resampling", type=Path, required=True,
                   help="sae_tms_resampling results (.json)")
    p.add_argument("--metrics", type=Path, required=True, help="metrics (.json)")
    p.add_argument("--figure-heatmap", type=Path, required=True, help=".png (a .pdf beside it)")
    p.add_argument("--figure-width", type=Path, required=True, help=".png (+ .pdf)")
    p.add_argument("--figure-resampling", type=Path, required=True, help=".png (+ .pdf)")
    args = p.parse_args(argv)
    cfg = load_config(args.profile)
    sweep, study = read_json(args.sweep), read_json(args.resampling)
    apply_style()
    prov = provenance(args.profile, cfg.sae_tms)
    save_figure(heatmap_figure(sweep), args.figure_heatmap, prov)
    save_figure(width_figure(sweep), args.figure_width, prov)
    save_figure(resampling_figure(study), args.figure_resampling, prov)
    metrics = {**sweep_metrics(sweep), **resampling_metrics(study)}
    write_json(args.metrics, metrics)
    for k, v in metrics.items():
        print(f"[sae_tms_figures] {k} = {v:.4g}")


if __name__ == "__main__":
    run(main)
