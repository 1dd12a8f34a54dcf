"""Figures of the SAE-methods write-up, from the sweeps, the ITO study and the analysis.

Each function returns a matplotlib Figure in the shared style; `all_figures` makes every figure
of the manifest (writeup.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colormaps
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
from torch import Tensor

from replications.sae_methods.config import Config
from shared.figures import PALETTE, apply_style

GREY = "#888888"
LABELS = {
    "plain": "no resampling", "resampling": "resampling", "ghost_original": "ghost grads (original)",
    "ghost_original_exp": "ghost grads (original, exp)",
    "ghost_rescaled": "ghost grads (rescaled)", "ghost_dead_only": "ghost grads (dead only rescaled)",
    "beta1_0": "beta1 = 0", "beta1_099": "beta1 = 0.99", "no_bias_beta1_0": "beta1 = 0, no pre-bias",
    "no_bias_beta1_099": "beta1 = 0.99, no pre-bias", "norm_at_most_one": "decoder norm <= 1",
}
STYLE = {"plain": (GREY, ":"), "resampling": ("black", "-"), "ghost_original": (PALETTE[3], "--"),
         "ghost_original_exp": (PALETTE[4 % len(PALETTE)], ":"),
         "ghost_rescaled": (PALETTE[0], "-"), "ghost_dead_only": (PALETTE[2], "-.")}


def _pareto(ax: plt.Axes, summary: Mapping[str, Any], method: str, label: str | None = None,
            color: Any = None, ls: str = "-") -> None:
    m = summary["methods"].get(method)
    if m is None:
        return
    order = np.argsort(m["l0"])
    ax.plot(np.asarray(m["l0"])[order], np.asarray(m["loss_recovered"])[order], ls, marker="o",
            ms=4, color=color, label=label or LABELS.get(method, method))


def _axes(ax: plt.Axes, title: str) -> None:
    ax.set_xscale("log")
    # Plain numbers at 1, 2, 5 x 10^k: the L0 ranges span less than a decade or two.
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("L0 (active features per token)")
    ax.set_ylabel("loss recovered")
    ax.set_title(title)
    ax.legend(fontsize=7)


def ghost_pareto(cfg: Config, sweeps: Mapping[str, Any]) -> plt.Figure:
    """Resampling, plain training and the ghost-grads losses on each site."""
    sites = list(cfg.comparisons.ghost_sites)
    fig, axes = plt.subplots(1, len(sites), figsize=(5.2 * len(sites), 4.2), squeeze=False)
    for ax, site in zip(axes[0], sites):
        for method, (color, ls) in STYLE.items():
            _pareto(ax, sweeps[site], method, color=color, ls=ls)
        _axes(ax, site.replace("_", " "))
    fig.suptitle("Ghost grads: L0 against loss recovered, one point per L1 coefficient")
    return fig


def ghost_all_steps(cfg: Config, sweeps: Mapping[str, Any]) -> plt.Figure:
    """Rescaled (left) and original (right) ghost grads with all features treated as dead for
    the first K steps."""
    c = cfg.comparisons
    s = sweeps[c.k_site]
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4.2), sharey=True)
    for ax, methods, title in ((axes[0], c.k_rescaled, "rescaled ghost grads"),
                               (axes[1], c.k_original, "original ghost grads")):
        cmap = colormaps["viridis"]
        for j, m in enumerate(methods):
            k = dict(cfg.methods[m]).get("ghost_all_steps", 0)
            _pareto(ax, s, m, label=f"K = {k}", color=cmap(0.1 + 0.4 * j))
        _axes(ax, f"{title}, {c.k_site.replace('_', ' ')}")
    return fig


def beta1_prebias(cfg: Config, sweeps: Mapping[str, Any]) -> plt.Figure:
    """Adam beta1 0 against 0.99, each with and without a pre-encoder bias."""
    c = cfg.comparisons
    s = sweeps[c.improvements_site]
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4.2), sharey=True)
    _pareto(axes[0], s, c.beta1_0, label="beta1 = 0", color=PALETTE[0])
    _pareto(axes[0], s, "beta1_099", color=PALETTE[3], ls="--")
    _axes(axes[0], "Adam beta1 (pre-encoder bias)")
    for m, color, ls in ((c.beta1_0, PALETTE[0], "-"), ("no_bias_beta1_0", PALETTE[0], ":"),
                         ("beta1_099", PALETTE[3], "-"), ("no_bias_beta1_099", PALETTE[3], ":")):
        label = "beta1 = 0" if m == c.beta1_0 else None
        _pareto(axes[1], s, m, label=label, color=color, ls=ls)
    _axes(axes[1], "with (solid) and without (dotted) pre-encoder bias")
    return fig


def decoder_norms(cfg: Config, sweeps: Mapping[str, Any], norms: Mapping[str, Tensor]
                  ) -> plt.Figure:
    """Decoder norms <= 1 with weight decay: their histogram, norm against ablation effect, and
    the Pareto curve against unit norms."""
    c = cfg.comparisons
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    if "norm_at_most_one.norm" in norms:
        n, abl = norms["norm_at_most_one.norm"].numpy(), norms["norm_at_most_one.ablation"].numpy()
        l1s = sweeps[c.improvements_site]["l1_coeffs"]
        for i in range(n.shape[0]):
            color = colormaps["plasma"](0.1 + 0.7 * i / max(n.shape[0] - 1, 1))
            axes[0].hist(n[i], bins=40, range=(0, 1.0001), histtype="step", color=color,
                         label=f"L1 {l1s[i]:g}")
            axes[1].scatter(n[i], np.maximum(abl[i], 1e-9), s=4, alpha=0.5, color=color)
        for ax in axes[:2]:
            ax.axvline(c.norm_low, color=GREY, lw=0.8, ls=":")
            ax.axvline(c.norm_high, color=GREY, lw=0.8, ls=":")
    axes[0].set_xlabel("decoder row norm")
    axes[0].set_ylabel("features")
    axes[0].set_title("decoder norms (at most one, weight decay)")
    axes[0].legend(fontsize=7)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("decoder row norm")
    axes[1].set_ylabel("ablation effect (added squared error)")
    axes[1].set_title("norm against the effect of ablating the feature")
    s = sweeps[c.improvements_site]
    _pareto(axes[2], s, c.beta1_0, label="unit norm", color="black")
    _pareto(axes[2], s, "norm_at_most_one", color=PALETTE[1], ls="--")
    _axes(axes[2], "loss recovered against L0")
    return fig


def _frontier_lines(ax: plt.Axes, ito: Mapping[str, Any], key: str, label: str) -> None:
    dicts = ito["dictionaries"]
    for j, d in enumerate(dicts):
        color = colormaps["viridis"](0.1 + 0.75 * j / max(len(dicts) - 1, 1))
        ax.plot(d[f"{key}_l0"], d[f"{key}_lr"], "-", marker="o", ms=4, color=color,
                label=f"{label}, dictionary of SAE L0 {d['encoder_l0']:.0f}")
    enc = sorted((d["encoder_l0"], d["encoder_lr"]) for d in dicts)
    ax.plot(*zip(*enc), "-", marker="s", color=GREY, label="SAE encoders (each its dictionary)")


def ito_frontier(ito: Mapping[str, Any]) -> plt.Figure:
    """Loss recovered against target L0: ITO on each dictionary, the encoders in grey, the
    random dictionary; right: the encoder's top-k coefficients on the same dictionaries."""
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4), sharey=True)
    _frontier_lines(axes[0], ito, "ito", "ITO")
    r = ito["random"]
    axes[0].plot(r["ito_l0"], r["ito_lr"], "--", marker="x", color=PALETTE[3],
                 label="ITO, random dictionary (same size)")
    _axes(axes[0], "inference-time optimisation (gradient pursuit)")
    axes[0].set_xlabel("L0 (target of ITO; the encoder's own for grey)")
    _frontier_lines(axes[1], ito, "topk", "top-k")
    _axes(axes[1], "top-k of the encoder's coefficients")
    return fig


def ito_scatter(ito: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> plt.Figure:
    """ITO activation against encoder activation of one feature, at the encoder's L0."""
    c = ito["codes"]
    pairs = tensors["scatter"].numpy()
    fig, ax = plt.subplots(figsize=(5.2, 4.8))
    ax.scatter(pairs[:, 0], pairs[:, 1], s=6, alpha=0.5, color=PALETTE[0])
    top = float(pairs.max()) if pairs.size else 1.0
    ax.plot([0, top], [0, top], color=GREY, lw=0.8, ls=":")
    d = ito["dictionaries"][ito["scatter_dictionary"]]
    ax.set_xlabel("encoder activation")
    ax.set_ylabel("ITO activation (target L0 = the encoder's, per token)")
    ax.set_title(f"feature {c['feature']} of the SAE with L0 {d['encoder_l0']:.0f}")
    return fig


def ito_min_activation(ito: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> plt.Figure:
    """Each token's smallest non-zero activation: the encoder against ITO at matched L0."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    enc, it = tensors["min_encoder"].numpy(), tensors["min_ito"].numpy()
    vals = np.concatenate([enc, it])
    lo = max(float(vals[vals > 0].min()) if (vals > 0).any() else 1e-4, 1e-6)
    bins = np.logspace(np.log10(lo), np.log10(float(vals.max()) + 1e-12), 50)
    ax.hist(enc, bins=bins, histtype="step", color=GREY, label="SAE encoder")
    ax.hist(it, bins=bins, histtype="step", color=PALETTE[0], label="ITO (gradient pursuit)")
    ax.set_xscale("log")
    ax.set_xlabel("smallest non-zero activation of a token")
    ax.set_ylabel("tokens")
    ax.legend(fontsize=8)
    return fig


def all_figures(cfg: Config, sweeps: Mapping[str, Any], norms: Mapping[str, Tensor],
                ito: Mapping[str, Any], ito_t: Mapping[str, Tensor], res: Mapping[str, Any]
                ) -> dict[str, plt.Figure]:
    apply_style()
    del res  # the analysis is for the claims; figures draw the raw curves
    return {
        "ito_frontier": ito_frontier(ito),
        "ito_scatter": ito_scatter(ito, ito_t),
        "ito_min_activation": ito_min_activation(ito, ito_t),
        "ghost_pareto": ghost_pareto(cfg, sweeps),
        "ghost_all_steps": ghost_all_steps(cfg, sweeps),
        "beta1_prebias": beta1_prebias(cfg, sweeps),
        "decoder_norms": decoder_norms(cfg, sweeps, norms),
    }


