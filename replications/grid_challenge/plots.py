"""Figures of the challenge-2 replication, from the analysis summary, the hand-set model's
summary and their tensors.

Each function returns a matplotlib Figure in the shared style; `all_figures` makes every figure
of the manifest (writeup.yaml). Grids are drawn as the post draws them: X down (rows), Y across
(columns), red = label 1, blue = label 0; the boundaries in the post's colours (green curve,
purple curve, orange line).
"""

from __future__ import annotations

from typing import Any, Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap, TwoSlopeNorm

from replications.grid_challenge import data
from replications.grid_challenge.analysis import FAMILIES, POST_FOUR
from replications.grid_challenge.handset import PRIMITIVES
from shared.figures import PALETTE, apply_style

Tensors = dict[str, torch.Tensor]
BLUE_C, RED_C = "#3B6FB6", "#C8413A"
LABEL_CMAP = ListedColormap([BLUE_C, RED_C])
CURVE_C = {"green": "#1B9E3E", "purple": "#7B3FA0", "orange": "#F08A00"}
GREY = "#777777"


def _grid(ax: plt.Axes, labels: torch.Tensor, title: str) -> None:
    ax.imshow(labels.numpy(), cmap=LABEL_CMAP, vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.set_xlabel("Y")
    ax.set_ylabel("X")
    ax.grid(False)


def _curves(ax: plt.Axes, lw: float = 1.0) -> None:
    cols = data.boundary_columns()
    xs = np.arange(data.P)
    for name, c in cols.items():
        c = c.numpy()
        ok = c < data.P - 0.5
        ax.plot(c[ok], xs[ok], color=CURVE_C[name], lw=lw, label=f"{name} boundary")
    ax.set_xlim(-0.5, data.P - 0.5)
    ax.set_ylim(data.P - 0.5, -0.5)


def _diverging(ax: plt.Axes, values: torch.Tensor, title: str) -> Any:
    v = values.numpy()
    lim = max(float(np.abs(v).max()), 1e-6)
    im = ax.imshow(v, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim), interpolation="nearest")
    ax.set_title(title)
    ax.set_xlabel("Y")
    ax.set_ylabel("X")
    ax.grid(False)
    return im


def labels_figure(s: dict, hs: dict, t: Tensors) -> plt.Figure:
    lab = s["labels"]
    apply_style()
    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(13.5, 4.4), layout="constrained",
                                     gridspec_kw={"width_ratios": [1, 1, 0.9]})
    _grid(ax, t["truth"], "Labelling function (reconstruction)")
    _curves(ax)
    ax.legend(loc="lower left", fontsize=6)
    _grid(bx, t["model_labels"], f"Model: held-out accuracy {lab['accuracy_test']:.3f}")
    _curves(bx, lw=0.6)
    err = torch.nonzero(t["errors"]).numpy()
    if len(err):
        bx.scatter(err[:, 1], err[:, 0], s=4, marker="s", facecolor="#FFE119",
                   edgecolor="black", linewidth=0.3, label=f"errors ({len(err)})")
        bx.legend(loc="lower left", fontsize=6)
    names = ["near curved boundaries", "near the orange line", "elsewhere (not near curved)",
             "rows with 0 changes", "rows with 1 change", "rows with 2 changes"]
    by = lab["error_rate_by_row_changes"]
    vals = [lab["error_rate_near_curved"], lab["error_rate_near_line"], lab["error_rate_elsewhere"],
            by["0"], by["1"], by["2"]]
    colours = [CURVE_C["green"], CURVE_C["orange"], GREY, PALETTE[0], PALETTE[0], PALETTE[0]]
    cx.bar(range(6), [v if v is not None else 0.0 for v in vals], color=colours)
    for i, v in enumerate(vals):
        cx.text(i, (v or 0.0), f"{v:.3f}" if v is not None else "-", ha="center", va="bottom",
                fontsize=7)
    cx.set_xticks(range(6))
    cx.set_xticklabels(names, fontsize=6.5, rotation=35, ha="right")
    cx.set_ylabel("error rate (all cells)")
    cx.set_title("Where the model errs (near = within 3 columns)")
    return fig


def neuron_families_figure(s: dict, hs: dict, t: Tensors) -> plt.Figure:
    neu = s["neurons"]
    apply_style()
    fig, axes = plt.subplots(2, 3, figsize=(13, 8.4), layout="constrained")
    for i, f in enumerate(POST_FOUR):
        ax = axes[i // 2, i % 2]
        n = neu["chosen"][f]
        im = _diverging(ax, t["four_contrib"][i],
                        f"{f}: neuron {n}" if n is not None else f"{f}: no neuron")
        _curves(ax, lw=0.6)
        fig.colorbar(im, ax=ax, fraction=0.046)
    ax = axes[0, 2]
    sizes = [neu["family_sizes"][f] for f in FAMILIES]
    ax.bar(range(len(FAMILIES)), sizes,
           color=[RED_C if f.startswith("red") else BLUE_C for f in FAMILIES])
    ax.set_xticks(range(len(FAMILIES)))
    ax.set_xticklabels(FAMILIES, rotation=30, fontsize=7)
    ax.set_ylabel("neurons")
    ax.set_title(f"Families: {neu['n_members']} neurons with max |contribution| "
                 f"> {neu['threshold']:g}", fontsize=8.5)
    bx = axes[1, 2]
    keys = [("agreement_four", "the four\n(post: 0.987)"), ("agreement_families", "all family\nneurons"),
            ("agreement_all_neurons", "all 1024\nneurons"),
            ("agreement_baseline_majority", "baseline:\nmajority label")]
    vals = [neu[k] if neu[k] is not None else 0.0 for k, _ in keys]
    bx.bar(range(len(keys)), vals, color=[PALETTE[0], PALETTE[5], PALETTE[2], GREY])
    for i, v in enumerate(vals):
        bx.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=7)
    bx.set_xticks(range(len(keys)))
    bx.set_xticklabels([k[1] for k in keys], fontsize=7)
    bx.set_ylim(0, 1.08)
    bx.set_ylabel("agreement with the model's labels")
    bx.set_title("Summed contributions > 0 (all else zero-ablated)", fontsize=8.5)
    fig.suptitle("MLP neurons: contribution to logit(red) - logit(blue) (red > 0, blue < 0)")
    return fig


def probes_figure(s: dict, hs: dict, t: Tensors) -> plt.Figure:
    pr = s["probes"]
    apply_style()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained", gridspec_kw={"width_ratios": [1, 1.6]})
    w = 0.38
    for j, (split, lab) in enumerate((("train", "fit half"), ("test", "held-out half"))):
        vals = [pr[f"x_{split}"], pr[f"y_{split}"]]
        ax.bar(np.arange(2) + (j - 0.5) * w, vals, w, label=lab, color=PALETTE[j])
        for i, v in enumerate(vals):
            ax.text(i + (j - 0.5) * w, v, f"{v:.3f}", ha="center", va="bottom", fontsize=7)
    ax.scatter([0, 1], [1.0, 0.78], marker="_", s=400, color="black", zorder=3,
               label="post (X 1.00, Y 0.78)")
    ax.axhline(pr["chance"], color=GREY, linestyle=":", label="chance 1/113")
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["X from resid_mid", "Y from resid_mid"])
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("probe accuracy")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Linear probes on resid_mid (last position)")
    for name, c in (("x", PALETTE[0]), ("y", PALETTE[1])):
        bx.plot(t[f"probe_{name}_per_value"].numpy(), color=c, label=name.upper(), lw=1)
    bx.set_xlabel("value")
    bx.set_ylabel("held-out accuracy")
    bx.set_ylim(-0.02, 1.05)
    bx.legend()
    bx.set_title("Held-out probe accuracy per value")
    return fig


def attention_ablation_figure(s: dict, hs: dict, t: Tensors) -> plt.Figure:
    at = s["attention"]
    apply_style()
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2), layout="constrained", gridspec_kw={"width_ratios": [1, 1, 1, 1.1]})
    model = t["model_labels"]
    _grid(axes[0], model, "Full model")
    for ax, key, title in ((axes[1], "ablated_labels",
                            f"Attention mean-ablated: agrees {at['ablated_agreement']:.3f}"),
                           (axes[2], "restored_labels",
                            f"Heads {at['top_y_heads']} restored: agrees "
                            f"{at['restored_agreement']:.3f}")):
        _grid(ax, t[key], title)
        diff = torch.nonzero(t[key] != model).numpy()
        if len(diff):
            ax.scatter(diff[:, 1], diff[:, 0], s=3, marker="s", facecolor="#FFE119",
                       edgecolor="none", label=f"differs from full ({len(diff)})")
            ax.legend(loc="lower left", fontsize=6)
    for ax in axes[:3]:
        ax.title.set_fontsize(8.5)
    cx = axes[3]
    mean = t["mean_pattern"].numpy()
    h = np.arange(mean.shape[0])
    for j, (name, c) in enumerate((("X", PALETTE[0]), ("Y", PALETTE[1]), ("Z (113)", GREY))):
        cx.bar(h + (j - 1) * 0.27, mean[:, j], 0.27, label=name, color=c)
    cx.set_xticks(h)
    cx.set_xlabel("head")
    cx.set_ylabel("mean attention from the last position")
    cx.legend(fontsize=7)
    cx.set_title("Per head (post: 92.9% agreement when mean-ablated)", fontsize=8.5)
    return fig


def qk_positional_figure(s: dict, hs: dict, t: Tensors) -> plt.Figure:
    qk = s["qk"]
    apply_style()
    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    delta = np.array(qk["delta_x_minus_y"])
    h = np.arange(len(delta))
    ax.bar(h, delta, color=[PALETTE[0] if d > 0 else PALETTE[1] for d in delta])
    ax.axhline(11, color=GREY, linestyle=":", lw=0.8, label="|delta| = 11 (post)")
    ax.axhline(-11, color=GREY, linestyle=":", lw=0.8)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(h)
    ax.set_xlabel("head")
    ax.set_ylabel("score(pos 2 -> pos 0) - score(pos 2 -> pos 1)")
    ax.set_title(f"Positional QK: {qk['n_heads_prefer_x']} of {len(delta)} heads prefer X's "
                 f"position (post: 7)", fontsize=8.5)
    ax.legend(fontsize=7)
    pos = t["qk_pos"].numpy()  # [head, q, k]
    row = pos[:, 2, :]  # the last position's scores over keys
    im = bx.imshow(row, cmap="RdBu_r", aspect="auto", norm=TwoSlopeNorm(0.0, -max(abs(row).max(), 1e-6),
                                                         max(abs(row).max(), 1e-6)))
    bx.set_xticks([0, 1, 2])
    bx.set_xticklabels(["X pos", "Y pos", "Z pos"])
    bx.set_yticks(h)
    bx.set_ylabel("head")
    bx.grid(False)
    bx.set_title("W_pos W_Q (W_pos W_K)^T, query = position 2", fontsize=8.5)
    fig.colorbar(im, ax=bx, fraction=0.046)
    tok = t["qk_tokens"].numpy()  # [key pos, head, token]
    for i in range(tok.shape[1]):
        cx.plot(tok[1, i], lw=0.9, color=PALETTE[i % len(PALETTE)], label=f"head {i}")
    cx.set_xlabel("Y (token at position 1)")
    cx.set_ylabel("attention score from position 2")
    cx.legend(fontsize=6, ncol=2)
    cx.set_title("QK on the token embeddings: keys at Y's position", fontsize=8.5)
    return fig


def extended_embeddings_figure(s: dict, hs: dict, t: Tensors) -> plt.Figure:
    ext, neu = s["extended"], s["neurons"]
    apply_style()
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.6), sharex=True, layout="constrained")
    four = t["ext_four"].numpy()  # [4, X or Y, token]
    for i, f in enumerate(POST_FOUR):
        ax = axes[i // 2, i % 2]
        n = neu["chosen"][f]
        ax.plot(four[i, 0], color=PALETTE[0], lw=1,
                label=f"X (rank corr. {ext['rho_x'].get(f, float('nan')):+.2f})")
        ax.plot(four[i, 1], color=PALETTE[1], lw=1,
                label=f"Y (rank corr. {ext['rho_y'].get(f, float('nan')):+.2f})")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_title(f"{f}: neuron {n}" if n is not None else f"{f}: no neuron", fontsize=9)
        ax.legend(fontsize=7)
        ax.set_ylabel("extended embedding")
    for ax in axes[1]:
        ax.set_xlabel("input value (token)")
    r, lf = ext["right_rising_y_share"], ext["left_falling_y_share"]
    fig.suptitle("Extended embeddings W_E W_V W_O W_in x mean attention. Y rises for right "
                 f"neurons in {r if r is None else f'{r:.2f}'} of {ext['n_right']}, falls for left "
                 f"neurons in {lf if lf is None else f'{lf:.2f}'} of {ext['n_left']}", fontsize=9)
    return fig


def handset_figure(s: dict, hs: dict, t: Tensors) -> plt.Figure:
    apply_style()
    fig = plt.figure(figsize=(15, 4.6), layout="constrained")
    gs = fig.add_gridspec(2, 4, width_ratios=[1, 1, 1, 1.3])
    ax = fig.add_subplot(gs[:, 0])
    _grid(ax, t["truth"], "Labelling function")
    _curves(ax, lw=0.6)
    bx = fig.add_subplot(gs[:, 1])
    _grid(bx, t["handset_labels"],
          f"Hand-set transformer: agrees {hs['agreement']:.4f}")
    diff = torch.nonzero(t["handset_labels"] != t["truth"]).numpy()
    if len(diff):
        bx.scatter(diff[:, 1], diff[:, 0], s=4, marker="s", facecolor="#FFE119", edgecolor="black",
                   linewidth=0.3)
    cx = fig.add_subplot(gs[:, 2])
    v = t["handset_logit_diff"].clamp(-3, 3)
    im = _diverging(cx, v, "Its logit difference (clipped to +-3)")
    fig.colorbar(im, ax=cx, fraction=0.046)
    prim = t["handset_by_primitive"].numpy()  # [primitive, X, Y]
    colours = {"red-all": "#E8776F", "blue-left": "#5AA0E0", "blue-right": "#1F4E8C",
               "red-right": "#9E1B14"}
    for j, row in enumerate((16, 112)):
        dx = fig.add_subplot(gs[j, 3])
        for i, p in enumerate(PRIMITIVES):
            if np.abs(prim[i, row]).max() > 0:
                dx.plot(prim[i, row], color=colours[p], lw=1, label=p)
        dx.plot(t["handset_logit_diff"][row].numpy(), color="black", lw=1.2, linestyle="--",
                label="sum")
        dx.axhline(0, color=GREY, lw=0.5)
        dx.set_ylim(-6, 6)
        dx.set_title(f"row {row} ({data.scan_rows(t['truth'])[row].pattern})", fontsize=8)
        dx.legend(fontsize=6, ncol=3, loc="upper right")
        dx.set_ylabel("logit diff")
    dx.set_xlabel("Y")
    return fig


FIGURES: dict[str, Callable[[dict, dict, Tensors], plt.Figure]] = {
    "grid_labels": labels_figure,
    "grid_neuron_families": neuron_families_figure,
    "grid_probes": probes_figure,
    "grid_attention_ablation": attention_ablation_figure,
    "grid_qk_positional": qk_positional_figure,
    "grid_extended_embeddings": extended_embeddings_figure,
    "grid_handset": handset_figure,
}


def all_figures(summary: dict, hs: dict, tensors: Tensors) -> dict[str, plt.Figure]:
    """Every figure of the manifest."""
    return {name: make(summary, hs, tensors) for name, make in FIGURES.items()}
