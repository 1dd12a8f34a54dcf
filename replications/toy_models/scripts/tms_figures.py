"""TMS figures and metrics: 5/2 geometry across sparsity, and feature dimensionality.

Figure 1 (geometry): one column per feature probability; W^T W on top, the feature directions
in the 2-D hidden space (when n_hidden is 2), and ||W_i|| bars coloured by superposition.
Figure 2 (dimensionality): D_i of every feature against 1/(1-S) with dimensions per feature
as a line and the sticky fractions 1, 3/4, 2/3, 1/2, 2/5, 1/3 dashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colors

from replications.toy_models.scripts._common import load_config, parser, provenance
from replications.toy_models.tms import (
    STICKY_FRACTIONS,
    dimensions_per_feature,
    feature_dimensionality,
    feature_norms,
    n_represented,
    polygon_angle_error,
    superposition,
)
from shared.cli import run
from shared.figures import PALETTE, apply_style, save_figure
from shared.io import load_tensors, write_json


def geometry_figure(W: torch.Tensor, prob: torch.Tensor, importance: torch.Tensor,
                    threshold: float) -> plt.Figure:
    """Columns: sparsities. Rows: W^T W, the feature directions (2-D models only), and the
    feature norms coloured by superposition."""
    n_inst, n_hidden, n_feat = W.shape
    show_arrows = n_hidden == 2
    n_rows = 3 if show_arrows else 2
    fig, axes = plt.subplots(
        n_rows, n_inst, figsize=(1.45 * n_inst + 0.9, 1.5 * n_rows + 0.9), squeeze=False,
        gridspec_kw={"height_ratios": [1.0, 1.0, 0.8][:n_rows] if show_arrows else [1.0, 0.8]},
    )
    gram = torch.einsum("ihf,ihg->ifg", W, W)
    lim = float(gram.abs().max())
    sup = superposition(W)
    norms = feature_norms(W)
    cmap_bar = plt.get_cmap("plasma")
    bar_norm = colors.Normalize(vmin=0.0, vmax=1.0)
    for k in range(n_inst):
        ax = axes[0, k]
        im = ax.imshow(gram[k].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"1-S = {prob[k]:.3g}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        if show_arrows:
            ax = axes[1, k]
            for i in range(n_feat):
                x, y = W[k, 0, i].item(), W[k, 1, i].item()
                ax.plot([0, x], [0, y], color=PALETTE[i % len(PALETTE)], lw=1.5)
                ax.scatter([x], [y], color=PALETTE[i % len(PALETTE)], s=10, zorder=3)
            r = max(1.2, float(norms.max()) * 1.1)
            ax.set_xlim(-r, r)
            ax.set_ylim(-r, r)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for side in ("left", "bottom"):
                ax.spines[side].set_visible(False)
            # Faint unit circle and axes: reference for the norms and angles.
            ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="0.8", lw=0.6))
            ax.axhline(0, color="0.85", lw=0.5, zorder=0)
            ax.axvline(0, color="0.85", lw=0.5, zorder=0)
            represented = int((norms[k] > threshold).sum())
            ax.set_xlabel(f"{represented} represented", fontsize=8)
        ax = axes[-1, k]
        ax.barh(np.arange(n_feat), norms[k].numpy(), color=cmap_bar(bar_norm(sup[k].numpy())),
                edgecolor="0.3", linewidth=0.4)
        ax.set_xlim(0, max(1.3, float(norms.max()) * 1.05))
        ax.invert_yaxis()
        ax.set_yticks(range(n_feat) if n_feat <= 10 else [])
        if k > 0:
            ax.set_yticklabels([])
        ax.set_xlabel(r"$\|W_i\|$")
    axes[0, 0].set_ylabel(r"$W^\top W$")
    if show_arrows:
        axes[1, 0].set_ylabel("feature directions\n(columns of W)")
    decay = float(importance[1] / importance[0]) if n_feat > 1 else 1.0
    axes[-1, 0].set_ylabel(f"feature $i$\n(importance ${decay:g}^i$)")
    fig.colorbar(im, ax=axes[0, :].tolist(), fraction=0.02, pad=0.01, label=r"$W^\top W$")
    sm = plt.cm.ScalarMappable(norm=bar_norm, cmap=cmap_bar)
    cbar = fig.colorbar(sm, ax=axes[-1, :].tolist(), fraction=0.02, pad=0.01,
                        label="superposition\n" + r"$\sum_{j\neq i}(\hat{W}_i\cdot W_j)^2$")
    cbar.set_ticks([0, 0.5, 1.0], labels=["0", "0.5", "≥1"])
    fig.suptitle(f"TMS {n_feat} features in {n_hidden} dimensions across sparsity "
                 "(1-S = feature probability)", fontsize=10)
    return fig


def dimensionality_figure(W: torch.Tensor, prob: torch.Tensor) -> plt.Figure:
    """Scatter of D_i against 1/(1-S), dimensions per feature as a line, sticky fractions dashed."""
    dims = feature_dimensionality(W)
    dpf = dimensions_per_feature(W)
    inv = (1.0 / prob).numpy()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for num, den in STICKY_FRACTIONS:
        ax.axhline(num / den, color="0.5", ls="--", lw=0.8, zorder=1)
        # Labels just outside the right edge (x in axes units, y in data units).
        ax.text(1.01, num / den, f"{num}/{den}" if den > 1 else "1", va="center", fontsize=8,
                color="0.35", transform=ax.get_yaxis_transform())
    # Small multiplicative jitter in x so points of one sparsity do not hide each other.
    rng = np.random.default_rng(0)
    for k in range(W.shape[0]):
        jitter = np.exp(rng.uniform(-0.04, 0.04, size=W.shape[-1]))
        ax.scatter(inv[k] * jitter, dims[k].numpy(), s=6, alpha=0.35, color=PALETTE[0],
                   linewidths=0, zorder=2,
                   label="feature dimensionality $D_i$" if k == 0 else None)
    ax.plot(inv, dpf.numpy(), color="black", lw=1.6, marker="o", ms=3, zorder=3,
            label=r"dimensions per feature $m / \|W\|_F^2$")
    ax.set_xscale("log")
    ax.set_xlim(inv.min() * 0.85, inv.max() * 1.5)
    ax.set_ylim(-0.03, 1.1)
    ax.set_xlabel("1 / (1-S)  (inverse feature probability)")
    ax.set_ylabel("dimensions per feature")
    ax.set_title(f"Feature dimensionality: {W.shape[-1]} features in {W.shape[1]} dimensions",
                 fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    legend = ax.legend(handles, labels, loc="upper right", bbox_to_anchor=(1.0, 0.94),
                       frameon=True)
    for handle in legend.legend_handles:
        handle.set_alpha(1.0)
    return fig


def geometry_metrics(W: torch.Tensor, prob: torch.Tensor, threshold: float) -> dict[str, float]:
    """Represented features at the densest / sparsest setting, and the polygon check."""
    rep = n_represented(W, threshold)
    out = {
        "tms_geometry_n_represented_densest": float(rep[0]),
        "tms_geometry_n_represented_sparsest": float(rep[-1]),
        "tms_geometry_probability_densest": float(prob[0]),
        "tms_geometry_probability_sparsest": float(prob[-1]),
        "tms_geometry_n_features": float(W.shape[-1]),
    }
    if W.shape[1] == 2:
        out["tms_geometry_sparsest_polygon_angle_error_deg"] = polygon_angle_error(W[-1], threshold)
    return out


def dimensionality_metrics(W: torch.Tensor, prob: torch.Tensor,
                           threshold: float) -> dict[str, float]:
    """Dimensions per feature at the extremes, and how many represented features sit near a
    sticky fraction (within 0.05) in the intermediate-sparsity instances."""
    dims = feature_dimensionality(W)
    dpf = dimensions_per_feature(W)
    represented = feature_norms(W) > threshold
    sticky = torch.tensor([n / d for n, d in STICKY_FRACTIONS])
    near = (dims.unsqueeze(-1) - sticky).abs().min(-1).values < 0.05
    # Intermediate: instances whose dimensions-per-feature lie strictly between the extremes.
    middle = (dpf < 0.95) & (dpf > float(dpf[-1]) + 0.02)
    mask = represented & middle.unsqueeze(-1)
    frac = float(near[mask].float().mean()) if mask.any() else float("nan")
    return {
        "tms_dimensionality_dims_per_feature_densest": float(dpf[0]),
        "tms_dimensionality_dims_per_feature_sparsest": float(dpf[-1]),
        "tms_dimensionality_n_represented_densest": float(represented[0].sum()),
        "tms_dimensionality_n_represented_sparsest": float(represented[-1].sum()),
        "tms_dimensionality_fraction_near_sticky": frac,
        "tms_dimensionality_n_features": float(W.shape[-1]),
        "tms_dimensionality_n_hidden": float(W.shape[1]),
    }


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0], training=False)
    p.add_argument("--weights", type=Path, required=True, help="tms_train output")
    p.add_argument("--metrics", type=Path, required=True, help="metrics (.json)")
    p.add_argument("--figure-geometry", type=Path, required=True, help=".png (a .pdf beside it)")
    p.add_argument("--figure-dimensionality", type=Path, required=True, help=".png (+ .pdf)")
    args = p.parse_args(argv)
    cfg = load_config(args.profile)
    t = load_tensors(args.weights)
    apply_style()
    prov = provenance(args.profile, cfg.tms)
    thr = cfg.tms.represented_threshold
    Wg, pg = t["geometry.W"], t["geometry.probability"]
    Wd, pd = t["dimensionality.W"], t["dimensionality.probability"]
    save_figure(geometry_figure(Wg, pg, t["geometry.importance"], thr), args.figure_geometry,
                prov)
    save_figure(dimensionality_figure(Wd, pd), args.figure_dimensionality, prov)
    metrics: dict[str, Any] = {**geometry_metrics(Wg, pg, thr),
                               **dimensionality_metrics(Wd, pd, thr)}
    write_json(args.metrics, metrics)
    for k, v in metrics.items():
        print(f"[tms_figures] {k} = {v:.4g}")


if __name__ == "__main__":
    run(main)
