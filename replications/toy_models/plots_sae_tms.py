"""Figures of the SAE-on-TMS studies (sae_tms.py): MMCS over width x L1, MMCS against width with
the knee and smooth fits of the cliff test, and MMCS against F/H with and without resampling.
Every panel shows the MMCS of random unit dictionaries of the same width (grey) as the chance
level. Each function returns a matplotlib figure; the scripts save it with
shared.figures.save_figure.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from replications.toy_models.sae_tms_metrics import best_seed_mean_mmcs, cliff_fit, fitted_curves
from shared.figures import PALETTE

MODE_LABELS = {"none": "no resampling", "reinit": "resampling (re-init)",
               "anthropic": "resampling (Anthropic, loss-weighted)"}
CHANCE_COLOUR = "0.55"


def heatmap_figure(sweep: dict[str, Any]) -> plt.Figure:
    """Rows: width multiples (with the random dictionary's MMCS); columns: L1 coefficients; each
    cell: seed-mean MMCS."""
    scores = np.array(sweep["mmcs"]).mean(-1)  # [n_widths, n_l1], mean over seeds
    fig, ax = plt.subplots(figsize=(1.0 * scores.shape[1] + 3.2, 0.45 * scores.shape[0] + 1.6))
    im = ax.imshow(scores, cmap="viridis", vmin=min(0.4, scores.min()), vmax=1.0, aspect="auto")
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            ax.text(j, i, f"{scores[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if scores[i, j] > 0.8 else "white")
    ax.set_xticks(range(scores.shape[1]), [f"{c:g}" for c in sweep["l1_coeffs"]])
    ax.set_yticks(range(scores.shape[0]), [
        f"{m:g} ({w}; random {r:.2f})" for m, w, r in
        zip(sweep["width_multiples"], sweep["widths"], sweep["random_mmcs"])])
    true_row = sweep["width_multiples"].index(1.0)
    ax.axhline(true_row - 0.5, color="white", lw=1.2, ls="--")
    ax.axhline(true_row + 0.5, color="white", lw=1.2, ls="--")
    ax.grid(False)
    ax.set_xlabel("L1 coefficient")
    ax.set_ylabel("SAE width / F  (width; random-dictionary MMCS)")
    ax.set_title(f"SAE MMCS (mean of {sweep['n_seeds']} seeds), TMS {sweep['n_features']} "
                 f"features in {sweep['n_hidden']} dims\n({sweep['n_represented']} represented; "
                 "dashed: width = F)", fontsize=10)
    fig.colorbar(im, ax=ax, label="MMCS")
    return fig


def width_figure(sweep: dict[str, Any]) -> plt.Figure:
    """Seed-mean MMCS against width multiple per L1 (seeds as faint points), best over L1 in
    black with its knee-at-F and smooth fits, the random dictionary's MMCS in grey."""
    per_seed = np.array(sweep["mmcs"])  # [width, l1, seed]
    scores = per_seed.mean(-1)
    mults = np.array(sweep["width_multiples"])
    chance, chance_sd = np.array(sweep["random_mmcs"]), np.array(sweep["random_mmcs_std"])
    n_l1 = scores.shape[1]
    fig, ax = plt.subplots(figsize=(5.8, 4.0))
    ax.axvline(1.0, color="0.3", ls="--", lw=1.0, label="width = true feature count F")
    ax.plot(mults, chance, color=CHANCE_COLOUR, marker="s", ms=3, lw=1.2,
            label="random unit dictionary (mean ± sd)")
    ax.fill_between(mults, chance - chance_sd, chance + chance_sd, color=CHANCE_COLOUR, alpha=0.2)
    for j, c in enumerate(sweep["l1_coeffs"]):
        color = PALETTE[j % len(PALETTE)]
        # Offset L1 values a little along x so their seed points stay distinguishable.
        x = mults * 2 ** (0.03 * (j - (n_l1 - 1) / 2))
        ax.plot(x, scores[:, j], marker="o", ms=3.5, lw=1.2, color=color, label=f"L1 = {c:g}")
        for xi, pts in zip(x, per_seed[:, j]):
            ax.scatter([xi] * len(pts), pts, s=7, color=color, alpha=0.3, linewidths=0)
    best = scores.max(1)
    grid = np.geomspace(mults[0], mults[-1], 200)
    knee, smooth = fitted_curves(mults.tolist(), best.tolist(), grid)
    fit = cliff_fit(mults.tolist(), best.tolist())
    ax.plot(mults, best, color="black", lw=0, marker="D", ms=4, label="best L1 (seed mean)")
    ax.plot(grid, knee, color="black", lw=1.4, alpha=0.7,
            label=f"knee at F fit (RMSE {fit['knee_rmse']:.3f})")
    ax.plot(grid, smooth, color="black", lw=1.2, ls=":",
            label=f"smooth c - a exp(-m/tau) fit (RMSE {fit['smooth_rmse']:.3f})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(mults, [f"{m:g}" for m in mults])
    ax.minorticks_off()
    ax.set_ylim(min(0.3, chance.min() - 0.05, per_seed.min() - 0.05), 1.03)
    ax.set_xlabel("SAE width / number of true features F  (log scale)")
    ax.set_ylabel(f"MMCS (mean of {sweep['n_seeds']} seeds; points: seeds)")
    ax.set_title(f"MMCS against width (TMS {sweep['n_features']} features in "
                 f"{sweep['n_hidden']} dims): smooth/knee RMSE {fit['fit_ratio']:.2f}",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=6.5)
    return fig


def resampling_figure(study: dict[str, Any]) -> plt.Figure:
    """Best-over-L1 seed-mean MMCS (with per-seed points) against F/H for every mode, and the
    random dictionary of each ratio's SAE width."""
    ratios = np.array(study["ratios"], dtype=float)
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    n_modes = len(study["modes"])
    chance = np.array([e["random_mmcs"] for e in study["per_ratio"]])
    chance_sd = np.array([e["random_mmcs_std"] for e in study["per_ratio"]])
    ax.errorbar(ratios, chance, yerr=chance_sd, color=CHANCE_COLOUR, marker="s", ms=3, lw=1.2,
                capsize=2, label="random unit dictionary, same width")
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
    labels = ", ".join(f"{e['n_represented']}/{e['n_features']} (SAE {e['sae_width']})"
                       for e in study["per_ratio"])
    n_hidden = study["per_ratio"][0]["n_hidden"]
    ax.set_xlabel(f"features / hidden dims of the TMS (F/H, H = {n_hidden})"
                  f"\nrepresented features (SAE width): {labels}", fontsize=8)
    ax.set_ylabel(f"MMCS (best L1; mean ± sd over {study['n_seeds']} seeds)")
    ax.set_title("Effect of resampling dead latents on MMCS", fontsize=10)
    ax.legend(loc="lower left", fontsize=7)
    return fig
