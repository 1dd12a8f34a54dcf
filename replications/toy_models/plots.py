"""The toy-models write-up's figures: TMS geometry and feature dimensionality (tms.py) and the
Tracr compression sweeps (tracr_compression.py: accuracy and learned singular values vs width);
the SAE-on-TMS figures are in plots_sae_tms.py. Each function returns a matplotlib figure; the
scripts save it with shared.figures.save_figure.
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colors

from replications.toy_models.tms import (
    STICKY_FRACTIONS,
    dimensions_per_feature,
    feature_dimensionality,
    feature_norms,
    superposition,
)
from shared.figures import PALETTE


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


def plot_accuracy(results: Sequence[dict[str, Any]]) -> Any:
    """Task accuracy vs compressed width, one line per program; d_model dashed, uncompressed *."""
    import matplotlib.pyplot as plt

    from shared.figures import PALETTE

    fig, ax = plt.subplots(figsize=(8.0, 3.6))
    for i, r in enumerate(results):
        colour = PALETTE[i % len(PALETTE)]
        kind = "CE" if r["categorical"] else "MSE"
        n_restarts = len(r["restart_accuracy"][0])
        if n_restarts > 1:
            xs = [w for w, accs in zip(r["widths"], r["restart_accuracy"]) for _ in accs]
            ys = [a for accs in r["restart_accuracy"] for a in accs]
            ax.scatter(xs, ys, s=7, color=colour, alpha=0.3, linewidths=0, zorder=1)
        ax.plot(r["widths"], r["accuracy"], "-o", ms=3, color=colour, zorder=3,
                label=f"{r['program']} ({kind} loss): per position")
        ax.plot(r["widths"], r["sequence_accuracy"], ":", lw=1.1, color=colour, zorder=2,
                label=f"{r['program']}: whole sequence")
        ax.axvline(r["d_model"], ls="--", lw=0.9, color=colour, zorder=0)
        ax.plot([r["d_model"]], [r["uncompressed_accuracy"]], marker="*", ms=12, color=colour,
                markeredgecolor="black", markeredgewidth=0.5, ls="", zorder=4,
                label=f"{r['program']} uncompressed (d_model={r['d_model']})")
    target = results[0]["summary"]["accuracy_target"]
    ax.axhline(target, ls=(0, (1, 3)), lw=0.9, color="0.4", zorder=0,
               label=f"{100 * target:g}% accuracy target")
    ax.set_xlabel("compressed residual width")
    ax.set_ylabel("accuracy on every input of the domain")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlim(0, max(r["d_model"] for r in results) + 1)
    restarts = len(results[0]["restart_accuracy"][0])
    note = f"; dots: all {restarts} restarts, line: lowest loss" if restarts > 1 else ""
    ax.set_title(f"Tracr compression, one W for every residual read and write{note}",
                 fontsize=8.5)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def plot_singular_values(results: Sequence[dict[str, Any]]) -> Any:
    """Singular values of each learned W (normalised by the largest), one panel per program.

    Panels share the y-axis so the spectra compare directly; a dotted line marks the number of
    residual dimensions of the output variable (where a CE-trained W's large values end).
    """
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    fig, axes = plt.subplots(1, len(results), figsize=(4.8 * len(results), 3.9), squeeze=False,
                             sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, r in zip(axes[0], results):
        norm = colors.Normalize(vmin=min(r["widths"]), vmax=r["d_model"])
        for w, svs in zip(r["widths"], r["singular_values"]):
            if w < 2:
                continue
            rel = [s / svs[0] for s in svs]
            ax.plot(range(1, w + 1), rel, "-", marker=".", ms=3, lw=0.9, color=cmap(norm(w)))
        n_out = r.get("n_output_dims")
        if n_out:
            ax.axvline(n_out, ls=":", lw=1.0, color="0.25")
            ax.annotate(f"output dims ({n_out})", xy=(n_out, 1.0), xytext=(4, -2),
                        textcoords="offset points", fontsize=7, va="top", color="0.25")
        ax.set_yscale("log")
        ax.set_xlabel("singular value index")
        s = r["summary"]
        kind = "categorical, CE loss" if r["categorical"] else "numerical, MSE loss"
        ax.set_title(
            f"{r['program']} ({kind}, d_model={r['d_model']})\n"
            f"width {s['mid_width']}: s1/s2 = {s['sv_ratio_at_mid_width']:.2f}, "
            f"s1/median = {s['sv_top_to_median_at_mid_width']:.2f}\n"
            f"top singular direction {100 * s['top_output_share_at_mid_width']:.0f}% "
            f"on the output variable", fontsize=8)
        fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="compressed width")
    axes[0][0].set_ylabel("singular value / largest")
    fig.suptitle("Singular values of the learned compression matrix W (one line per width)",
                 fontsize=10)
    fig.tight_layout()
    return fig
