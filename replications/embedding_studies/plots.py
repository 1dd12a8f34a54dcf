"""Figures of the embedding studies, from the three stages' JSON and tensors.

Each function returns a matplotlib Figure in the shared style; `all_figures` makes every figure
of the manifest (writeup.yaml).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.ticker import MaxNLocator

from shared.figures import PALETTE, apply_style

RAW_C, CENTRED_C, BASE_C = PALETTE[1], PALETTE[0], "#777777"


def _variant_style(name: str, remove_pcs: list[int]) -> tuple[str, Any]:
    if name == "raw":
        return "raw", RAW_C
    if name == "centred":
        return "mean-centred", CENTRED_C
    k = int(name.rsplit("_", 1)[1])
    shade = colormaps["Greens"](0.45 + 0.5 * remove_pcs.index(k) / max(1, len(remove_pcs) - 1))
    return f"centred, top {k} PC{'s' if k > 1 else ''} removed", shade


def _ordered(variants: dict[str, Any]) -> list[str]:
    """raw, centred, then the PC removals by k (the JSON stores keys sorted as text)."""
    pcs = sorted((k for k in variants if k.startswith("pcs_removed_")),
                 key=lambda k: int(k.rsplit("_", 1)[1]))
    return [k for k in ("raw", "centred") if k in variants] + pcs


def embedding_cosines(p1: dict[str, Any]) -> plt.Figure:
    """The post's histogram (raw), and the same after centring and after removing top PCs."""
    apply_style()
    emb = p1["embedding"]
    bins = p1["bins"]
    edges = np.linspace(-1, 1, bins + 1)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.6, 3.6))
    for name in _ordered(emb["variants"]):
        v = emb["variants"][name]
        label, colour = _variant_style(name, p1["remove_pcs"])
        hist = np.asarray(v["hist"], dtype=float)
        target = ax if name == "raw" else bx
        target.stairs(hist / hist.sum(), edges, color=colour, linewidth=1.4,
                      fill=name == "raw", alpha=0.6 if name == "raw" else 1.0,
                      label=f"{label}: mean {v['mean']:.3f}")
        target.axvline(v["mean"], color=colour, linestyle="--", linewidth=0.9)
    ax.set_title(f"Token embeddings as they are ({emb['n_tokens']:,} tokens)")
    ax.text(0.02, 0.95, f"cosine with the mean embedding: {emb['cos_with_mean']['mean']:.3f}\n"
                        f"mean's share of the squared norm: {emb['mean_norm_share']:.3f}",
            transform=ax.transAxes, fontsize=7, va="top")
    bx.set_title("Re-centred: mean subtracted, top principal components removed")
    for a in (ax, bx):
        a.set_xlabel("pairwise cosine similarity")
        a.set_xlim(-1, 1)
        a.legend(fontsize=7, loc="upper right")
    ax.set_ylabel("fraction of pairs")
    fig.suptitle(f"{p1['model_label']}: pairwise cosines of W_E", fontsize=9, y=1.02)
    return fig


def residual_cosines(p1: dict[str, Any]) -> plt.Figure:
    """Mean and quartiles of the pairwise cosine per layer, raw and re-centred."""
    apply_style()
    res = p1["residual"]
    names = res["layer_names"]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name in _ordered({k: v for k, v in res["layers"][0].items() if k != "cos_with_mean"}):
        label, colour = _variant_style(name, p1["remove_pcs"])
        mean = [lay[name]["mean"] for lay in res["layers"]]
        q25 = [lay[name]["q25"] for lay in res["layers"]]
        q75 = [lay[name]["q75"] for lay in res["layers"]]
        ax.fill_between(x, q25, q75, color=colour, alpha=0.15, linewidth=0)
        ax.plot(x, mean, marker="o", markersize=3, color=colour, label=label)
    ax.plot(x, [lay["cos_with_mean"] for lay in res["layers"]], color=BASE_C, linestyle=":",
            marker="x", markersize=3, label="cosine with the layer's mean (raw)")
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.set_xticks(x, names)
    ax.set_xlabel("residual stream (embed: before block 0; i: after block i)")
    ax.set_ylabel("pairwise cosine (mean, quartile band)")
    ax.set_ylim(-0.3, 1.02)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{p1['model_label']}: {res['n_positions']:,} residual positions of text")
    return fig


def length_regression(d: dict[str, Any], t: dict[str, torch.Tensor]) -> plt.Figure:
    """Held-out predicted vs true length; the per-length mean prediction steps."""
    apply_style()
    ln = d["length"]
    y, pred = t["length_test"].numpy(), t["pred_test"].numpy()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.6, 3.8))
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, len(y))
    ax.scatter(y + jitter, pred, s=5, alpha=0.5, color=CENTRED_C, linewidths=0)
    lim = [0.5, max(y.max(), pred.max()) + 0.5]
    ax.plot(lim, lim, color=BASE_C, linestyle="--", linewidth=1, label="prediction = truth")
    ax.set_xlabel("true number of characters (jittered)")
    ax.set_ylabel("predicted (held-out tokens)")
    ax.set_title(f"Held-out R² {ln['heldout_r2']:.3f} (shuffled labels: "
                 f"{ln['shuffled_r2_mean']:.3f}); {ln['n_test']} tokens")
    ax.legend(fontsize=7, loc="upper left")
    ks = np.asarray(ln["lengths"])
    bx.plot(ks, ln["heldout_mean_pred"], marker="o", color=CENTRED_C,
            label="held-out mean prediction per length")
    bx.plot(ks, ks, color=BASE_C, linestyle="--", linewidth=1, label="one character per step")
    bx.set_xlabel("true number of characters")
    bx.set_ylabel("mean prediction")
    bx.set_title("Numeric, not clusters? the steps between lengths")
    bx.text(0.98, 0.04,
            f"consecutive class-mean steps, mean cosine: {ln['step_alignment_consecutive']:.2f}\n"
            f"  (shuffled lengths: {ln['step_alignment_consecutive_shuffled']:.2f})\n"
            f"regression read along the mean step: {ln['unit_step']:.2f} characters\n"
            f"rising steps: {ln['monotone_fraction']:.2f}",
            transform=bx.transAxes, fontsize=7, ha="right", va="bottom")
    bx.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{d['model_label']}: number of characters from the token embedding "
                 f"({d['n_kept']:,} of {d['n_vocab']:,} tokens kept)", fontsize=9, y=1.02)
    return fig


def directions(d: dict[str, Any]) -> plt.Figure:
    """Held-out score of every direction beside its shuffled-label and majority baselines."""
    apply_style()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.6, 3.4), gridspec_kw={"width_ratios": [1, 2]})
    ln = d["length"]
    ax.bar([0, 1], [ln["heldout_r2"], ln["shuffled_r2_mean"]], color=[CENTRED_C, BASE_C])
    ax.set_xticks([0, 1], ["embedding", "shuffled\nlengths"])
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.set_ylabel("held-out R²")
    ax.set_title("Number of characters (regression)")
    names = [("space", "begins with a space"), ("capital", "capitalised")]
    x = np.arange(len(names))
    w = 0.27
    for j, (key, colour, label) in enumerate([("heldout_acc", CENTRED_C, "embedding probe"),
                                              ("shuffled_acc", BASE_C, "shuffled labels"),
                                              ("majority_acc", "#bbbbbb", "majority class")]):
        vals = [d[n][key] for n, _ in names]
        bx.bar(x + (j - 1) * w, vals, w, color=colour, label=label)
        for xi, v in zip(x, vals):
            bx.text(xi + (j - 1) * w, v + 0.01, f"{v:.2f}", ha="center", fontsize=7)
    bx.set_xticks(x, [f"{lab}\n({d[n]['n_tokens']} tokens, {d[n]['positive_share']:.0%} yes)"
                      for n, lab in names])
    bx.set_ylim(0, 1.1)
    bx.set_ylabel("held-out accuracy")
    bx.set_title("Binary directions (logistic probe)")
    bx.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{d['model_label']}: word2vec-style directions in W_E", fontsize=9, y=1.02)
    return fig


def positional_key_plot(pos: dict[str, Any], t: dict[str, torch.Tensor]) -> plt.Figure:
    """Rows: true word index; bars: absolute positions; stacks: the predicted indices."""
    apply_style()
    n = len(pos["per_index_acc"])
    vp, vi, pr = t["val_pos"].numpy(), t["val_index"].numpy(), t["val_pred"].numpy()
    cmap = colormaps["tab10"]
    positions = np.arange(vp.min(), vp.max() + 1)
    fig, axes = plt.subplots(n, 1, figsize=(9.6, 1.0 * n + 1), sharex=True)
    for i, ax in enumerate(axes):
        sel = vi == i
        bottom = np.zeros(len(positions))
        total = np.array([(vp[sel] == p).sum() for p in positions], dtype=float)
        for c in range(n):
            share = np.array([((vp[sel] == p) & (pr[sel] == c)).sum() for p in positions])
            share = np.divide(share, total, out=np.zeros(len(positions)), where=total > 0)
            ax.bar(positions, share, bottom=bottom, color=cmap(c), width=0.85,
                   label=f"predicted {c}" if i == 0 else None)
            bottom += share
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.grid(False)
        ax.set_ylabel(f"index {i}\n{pos['per_index_acc'][i]:.2f}", rotation=0, ha="right",
                      va="center", fontsize=7)
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("absolute position of the word's last token")
    axes[0].legend(ncol=n, fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.02))
    fig.suptitle(f"{pos['model_label']}, residual after block {pos['layer']}: predicted word "
                 f"index per true index (row; accuracy at left) and position; accuracy "
                 f"{pos['acc']:.2f}, chance {pos['chance']:.2f}", fontsize=9, y=1.0)
    return fig


def positional_by_layer(pos: dict[str, Any]) -> plt.Figure:
    """Probe accuracy per layer, as the post and position-balanced, against the baseline."""
    apply_style()
    L = len(pos["acc_by_layer"])
    x = np.arange(L)
    names = ["embed"] + [str(i) for i in range(L - 1)]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(x, pos["acc_by_layer"], marker="o", color=RAW_C, label="probe, all word ends")
    ax.axhline(pos["baseline_acc"], color=RAW_C, linestyle=":",
               label="position + space baseline, all")
    ax.plot(x, pos["balanced_acc_by_layer"], marker="s", color=CENTRED_C,
            label="probe, position-balanced")
    ax.axhline(pos["balanced_baseline_acc"], color=CENTRED_C, linestyle=":",
               label="position + space baseline, balanced")
    ax.axhline(pos["chance"], color=BASE_C, linewidth=0.8, label="chance")
    ax.axvline(pos["layer"] + 1, color="#999999", linestyle="--", linewidth=0.8)
    ax.set_xticks(x, names)
    ax.set_xlabel("residual stream (embed: before block 0; i: after block i)")
    ax.set_ylabel("held-out word-index accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{pos['model_label']}: {pos['n_val']} validation word ends "
                 f"({pos['n_val_balanced']} balanced)")
    return fig


def all_figures(p1: dict[str, Any], d: dict[str, Any], dt: dict[str, torch.Tensor],
                pos: dict[str, Any], pt: dict[str, torch.Tensor]) -> dict[str, plt.Figure]:
    return {
        "embedding_cosines": embedding_cosines(p1),
        "residual_cosines": residual_cosines(p1),
        "length_regression": length_regression(d, dt),
        "directions": directions(d),
        "positional_key_plot": positional_key_plot(pos, pt),
        "positional_by_layer": positional_by_layer(pos),
    }
