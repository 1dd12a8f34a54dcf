"""Figures of the local-processing replication, from a `Harvest` and its analysis summary.

Each function returns a matplotlib Figure in the shared style; `all_figures` makes every figure
of the manifest (writeup.yaml). Colours: contexts on a sequential scale (light = short); the write-up's
contrast uses blue for context 5 and red (vermillion) for context 1, as its figure does.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colormaps

from replications.local_processing.analysis import Harvest
from replications.local_processing.categories import CATEGORIES, LABELS
from replications.local_processing.config import Config
from shared.figures import PALETTE, apply_style

FOCUS_C, CONTRAST_C, BASE_C = PALETTE[0], PALETTE[1], "#777777"
# Punctuation in warm colours, words in green / blue.
CATEGORY_C = dict(zip(CATEGORIES, (PALETTE[1], PALETTE[4], PALETTE[3], PALETTE[0], PALETTE[2],
                                   PALETTE[5])))


def _context_colours(contexts: tuple[int, ...]) -> dict[int, Any]:
    cmap = colormaps["viridis_r"]
    span = max(1, len(contexts) - 1)
    return {c: cmap(0.1 + 0.85 * j / span) for j, c in enumerate(contexts)}


def _model_label(h: Harvest) -> str:
    return f"{h.info['model_label']} ({h.n_layers} layers), {len(h.token):,} tokens"


def _third_line(ax: plt.Axes, summary: dict) -> None:
    k = summary["trend"]["first_third_layer"]
    ax.axvline(k, color="#999999", linestyle=":", linewidth=1)
    ax.text(k, 0.98, " first third", transform=ax.get_xaxis_transform(), fontsize=7,
            color="#555555", va="top")


def _layers(h: Harvest) -> np.ndarray:
    return np.arange(h.n_layers)


def _layer_ticks(ax: plt.Axes, n_layers: int) -> None:
    step = max(1, round(n_layers / 8))
    ax.set_xticks(np.arange(0, n_layers, step))
    ax.set_xlabel("layer (residual after the block)")


def median_by_layer(h: Harvest, summary: dict, cfg: Config) -> plt.Figure:
    """Left: median per context; right: context 1 against context 5 with quartile bands."""
    apply_style()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.6, 3.6), sharey=True)
    x = _layers(h)
    colours = _context_colours(h.contexts)
    pc = summary["per_context"]
    for c in h.contexts:
        ax.plot(x, pc[f"c{c}"]["median"], color=colours[c], marker="o", markersize=2.5,
                linewidth=1.2, label=f"{c}")
    base = summary["baseline_median"]
    # Off the axis (it would squash the curves): the random-pair level, in the legend.
    ax.plot([], [], color=BASE_C, linestyle="--", linewidth=1,
            label=f"random pair: {min(base):.2f} to {max(base):.2f}")
    ax.legend(title="context (tokens)", ncol=2, fontsize=7, title_fontsize=7, loc="best")
    ax.set_ylabel("median centred cosine, full vs truncated")
    ax.set_title("Every truncated context length")
    f, r = cfg.analysis.focus_context, cfg.analysis.contrast_context
    for c, colour in ((f, FOCUS_C), (r, CONTRAST_C)):
        s = pc[f"c{c}"]
        bx.fill_between(x, s["q25"], s["q75"], color=colour, alpha=0.18, linewidth=0)
        bx.plot(x, s["median"], color=colour, marker="o", markersize=3,
                label=f"context {c}" + (" (token alone)" if c == 1 else "")
                + f": layer 0 median {s['median'][0]:.3f}")
    bx.legend(loc="best", fontsize=7)
    bx.set_title(f"Context {r} against context {f} (median, quartiles)")
    low = min(min(pc[f"c{c}"]["median"]) for c in h.contexts)
    low = min(low, min(pc[f"c{f}"]["q25"]), min(pc[f"c{r}"]["q25"]))
    for a in (ax, bx):
        _layer_ticks(a, h.n_layers)
        _third_line(a, summary)
        a.set_ylim(max(-1.0, low - 0.04), 1.005)
    fig.suptitle(f"Early layers softly specialise in local processing — {_model_label(h)}",
                 fontsize=9, y=1.02)
    return fig


def _violin_layers(n_layers: int, most: int) -> list[int]:
    if n_layers <= most:
        return list(range(n_layers))
    return sorted({round(float(v)) for v in np.linspace(0, n_layers - 1, most)})


def distribution(h: Harvest, summary: dict, cfg: Config) -> plt.Figure:
    """Left: violins of the focus context's cosine per layer; right: log-count histograms."""
    apply_style()
    f = cfg.analysis.focus_context
    j = h.context_index(f)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.6, 3.6), gridspec_kw={"width_ratios": [1.4, 1]})
    layers = _violin_layers(h.n_layers, cfg.figures.max_violin_layers)
    data = [h.cos[:, j, layer].double().numpy() for layer in layers]
    parts = ax.violinplot(data, positions=layers, widths=0.8, showextrema=False,
                          points=200)
    for body in parts["bodies"]:
        body.set_facecolor(FOCUS_C)
        body.set_alpha(0.45)
    q = np.array([np.quantile(d, [0.01, 0.5]) for d in data])
    ax.plot(layers, q[:, 1], color=FOCUS_C, marker="o", markersize=3, linewidth=1,
            label="median")
    ax.plot(layers, q[:, 0], color=CONTRAST_C, marker="v", markersize=3, linewidth=0.8,
            linestyle="--", label="1st percentile")
    negative = float(h.cos[:, j].min()) < 0
    if negative:
        ax.axhline(0, color="#999999", linewidth=0.8)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_ylabel("centred cosine, full vs truncated")
    ax.set_title(f"Whole distribution per layer, context {f}")
    _layer_ticks(ax, h.n_layers)
    k = int(summary["trend"]["first_third_layer"])
    shown = sorted({0, k, h.n_layers - 1})
    bins = np.linspace(float(h.cos[:, j].min()), 1.0, cfg.figures.hist_bins)
    colours = (FOCUS_C, PALETTE[2], PALETTE[3])
    for layer, colour in zip(shown, colours):
        values = h.cos[:, j, layer].double().numpy()
        bx.hist(values, bins=bins, histtype="step", color=colour, linewidth=1.2,
                label=f"layer {layer}: {100 * (values < 0).mean():.1f}% below 0")
    bx.set_yscale("log")
    if negative:
        bx.axvline(0, color="#999999", linewidth=0.8)
    bx.set_xlabel("centred cosine")
    bx.set_ylabel("tokens")
    tail = summary["tail"]
    q = cfg.analysis.tail_quantile
    bx.set_title(f"Long left tail: median - q{100 * q:g}% is {tail['left_over_right_tail']:.1f}x "
                 f"q{100 * (1 - q):g}% - median", fontsize=9)
    bx.legend(loc="upper left", fontsize=7)
    fig.suptitle(_model_label(h), fontsize=9, y=1.02)
    return fig


def categories(h: Harvest, summary: dict, cfg: Config) -> plt.Figure:
    """Left: box plots per category at (layer, context); right: category medians by layer."""
    apply_style()
    layer, context = cfg.categories.layer, cfg.categories.context
    j = h.context_index(context)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.6, 3.8), gridspec_kw={"width_ratios": [1.2, 1]})
    cos = h.cos[:, j, layer].double()
    present = [(i, c) for i, c in enumerate(CATEGORIES) if bool((h.category == i).any())]
    data = [cos[h.category == i].numpy() for i, _ in present]
    box = ax.boxplot(data, positions=range(len(present)), widths=0.6, whis=(5, 95),
                     showfliers=True, patch_artist=True,
                     flierprops={"markersize": 1.5, "alpha": 0.4, "markeredgewidth": 0},
                     medianprops={"color": "black", "linewidth": 1.2})
    for patch, (_, c) in zip(box["boxes"], present):
        patch.set_facecolor(CATEGORY_C[c])
        patch.set_alpha(0.7)
    for flier, (_, c) in zip(box["fliers"], present):
        flier.set_markerfacecolor(CATEGORY_C[c])
    counts = summary["categories"]["count"]
    ax.set_xticks(range(len(present)))
    ax.set_xticklabels([f"{LABELS[c].replace(' ', chr(10))}\nn={counts[c]}"
                        for _, c in present], fontsize=7)
    ax.set_ylabel("centred cosine, full vs truncated")
    ax.set_title(f"Layer {layer}, context {context} (box: quartiles, whiskers 5-95%)")
    x = _layers(h)
    for i, c in present:
        sel = h.category == i
        med = torch.quantile(h.cos[sel, j].double(), 0.5, dim=0).numpy()
        bx.plot(x, med, color=CATEGORY_C[c], marker="o", markersize=2.5, label=LABELS[c])
    bx.set_ylabel("median centred cosine")
    bx.set_title(f"Median per category against layer, context {context}")
    _layer_ticks(bx, h.n_layers)
    bx.legend(fontsize=7, loc="lower left", ncol=2)
    fig.suptitle(f"Cosine by token category — {_model_label(h)}", fontsize=9, y=1.02)
    return fig


def squared_cosine(h: Harvest, summary: dict, cfg: Config) -> plt.Figure:
    """Median squared cosine (share of the centred residual's squared norm explained)."""
    apply_style()
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    x = _layers(h)
    colours = _context_colours(h.contexts)
    pc = summary["per_context"]
    f = cfg.analysis.focus_context
    j = h.context_index(f)
    sq = h.cos[:, j].double() ** 2
    q25, q75 = torch.quantile(sq, torch.tensor([0.25, 0.75], dtype=torch.float64), dim=0)
    ax.fill_between(x, q25.numpy(), q75.numpy(), color=colours[f], alpha=0.15, linewidth=0,
                    label=f"context {f}: quartiles")
    for c in h.contexts:
        ax.plot(x, pc[f"c{c}"]["squared_median"], color=colours[c], marker="o",
                markersize=2.5, linewidth=1.2 if c != f else 2.0, label=f"context {c}")
    ax.axhline(0.81, color="#999999", linestyle=":", linewidth=1,
               label="cosine 0.9: 81% explained")
    ax.set_ylabel("median squared cosine")
    ax.set_title("Fraction of (centred) norm explained by the truncated context")
    ax.legend(ncol=2, fontsize=7, loc="lower left")
    _layer_ticks(ax, h.n_layers)
    _third_line(ax, summary)
    ax.set_ylim(0, 1.02)
    fig.suptitle(_model_label(h), fontsize=9, y=1.02)
    return fig


def all_figures(h: Harvest, summary: dict, cfg: Config) -> dict[str, plt.Figure]:
    return {
        "median_by_layer": median_by_layer(h, summary, cfg),
        "distribution": distribution(h, summary, cfg),
        "categories": categories(h, summary, cfg),
        "squared_cosine": squared_cosine(h, summary, cfg),
    }
