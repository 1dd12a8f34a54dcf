"""Figures of the lookup MLPs' neurons (rules/neurons.smk); the numbers come from neurons.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from replications.fact_finding.neuron_facts import EntityEffects
from replications.fact_finding.neuron_lookup import LookupResult
from shared.figures import PALETTE, Provenance, apply_style, plt, save_figure


def plot_entity(effects: EntityEffects, entity: str, ablation: str, where: str, png: Path,
                provenance: Provenance) -> None:
    """(a) correlation across facts of the per-neuron ablation effects; (b) the scatter of every
    pair of facts (one point per lookup neuron, each fact on its own scale)."""
    apply_style()
    corr = effects.correlation().numpy()
    flat = effects.effects.flatten(1).numpy()
    labels = [f"{r} ({a.strip()})" for r, a in zip(effects.relations, effects.answers)]
    n = len(labels)
    fig = plt.figure(figsize=(4.2 + 1.6 * (n - 1), max(3.8, 1.55 * (n - 1) + 0.6)))
    left, right = fig.subfigures(1, 2, width_ratios=[4.2, 1.6 * (n - 1)], wspace=0.02)
    ax = left.subplots()
    im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.grid(False)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{corr[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                    color="white" if abs(corr[i, j]) > 0.6 else "black")
    left.colorbar(im, ax=ax, shrink=0.7, label="Pearson r over lookup neurons")
    ax.set_title(f"(a) {entity}: do the same neurons\nmatter for every fact?", fontsize=9)
    lims = np.abs(flat).max(1) * 1.1 + 1e-9
    axes = right.subplots(n - 1, n - 1, squeeze=False)
    for i in range(1, n):
        for j in range(n - 1):
            a = axes[i - 1, j]
            if j >= i:
                a.axis("off")
                continue
            a.scatter(flat[j], flat[i], s=3, alpha=0.4, color=PALETTE[0], linewidths=0)
            a.axhline(0, color="0.6", lw=0.5)
            a.axvline(0, color="0.6", lw=0.5)
            a.set_xlim(-lims[j], lims[j])
            a.set_ylim(-lims[i], lims[i])
            a.tick_params(labelsize=5)
            a.text(0.03, 0.97, f"r={corr[i, j]:.2f}", transform=a.transAxes, fontsize=6,
                   va="top")
            if i == n - 1:
                a.set_xlabel(effects.relations[j], fontsize=7)
            if j == 0:
                a.set_ylabel(effects.relations[i], fontsize=7)
    right.suptitle(f"(b) change in each answer's log prob (nats) when one neuron of MLPs "
                   f"{', '.join(map(str, effects.layers))}\nis {ablation}-ablated {where} "
                   f"(one point per neuron)", fontsize=8)
    save_figure(fig, png, provenance)


def plot_excess(result: LookupResult, png: Path, provenance: Provenance) -> None:
    """Per person: total non-linear excess of the lookup MLPs on the sport direction against the
    part the GELUs make and pass straight to it; the ratio's distribution."""
    apply_style()
    ex = result.excess
    total, gelu = ex.total.numpy(), ex.gelu_part.numpy()
    ratio = ex.ratio().numpy()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.2, 3.5), width_ratios=[1.2, 1])
    for k, ans in enumerate(result.answers):
        m = result.excess_label.numpy() == k
        a1.scatter(total[m], gelu[m], s=8, alpha=0.6, color=PALETTE[k], label=ans,
                   linewidths=0)
    lo = min(total.min(), gelu.min(), 0)
    hi = max(total.max(), gelu.max())
    a1.plot([lo, hi], [lo, hi], color="0.3", lw=0.8, ls="--", label="x = y")
    a1.set_xlabel("total non-linear excess on the sport direction")
    a1.set_ylabel("non-linear excess made by the GELUs\n(direct effect, kept neurons)")
    a1.set_title("(a) one point per known person")
    a1.legend(fontsize=7)
    med = float(np.median(ratio))
    clipped = np.clip(ratio, -1, 2)
    a2.hist(clipped, bins=40, range=(-1, 2), color=PALETTE[0], alpha=0.8)
    a2.axvline(med, color=PALETTE[1], lw=1.2, label=f"median {med:.2f}")
    a2.axvline(0.23, color="0.3", lw=1, ls=":", label="write-up median 0.23")
    a2.set_xlabel("GELU part / total (clipped to [-1, 2])")
    a2.set_ylabel("people")
    a2.set_title("(b) ratio per person")
    a2.legend(fontsize=7)
    head = "attribute head OV" if result.direction == "head_ov" else "unembedding"
    fig.suptitle(f"How much of the lookup MLPs' AND do their GELUs make? (read {result.where}; "
                 f"sport direction via the {head})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, png, provenance)


def plot_selective(result: LookupResult, png: Path, provenance: Provenance) -> None:
    """The most target-selective lookup neuron: activations, AUCs, ablated losses, cosines."""
    apply_style()
    sel = result.selective
    m = sel.metrics
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2), width_ratios=[1.3, 1, 0.8, 1])
    acts = sel.acts.numpy()
    pos = sel.positive.numpy()
    bins = np.linspace(acts.min(), acts.max(), 30)
    axes[0].hist(acts[pos], bins=bins, alpha=0.7, color=PALETTE[0], label=m["target"])
    axes[0].hist(acts[~pos], bins=bins, alpha=0.6, color=PALETTE[1], label="other sports")
    axes[0].set_xlabel(f"activation {result.where} (post-GELU)")
    axes[0].set_ylabel("known people")
    axes[0].set_title(f"(a) {m['name']}: ROC AUC {m['auc']:.3f}")
    axes[0].legend(fontsize=7)
    names = ["post-GELU", "pre-GELU", "W_in \u22a5 3 dirs", "orth. remainder"]
    vals = [m["auc"], m["auc_pre_gelu"], m["auc_w_in_orthogonal"], m["auc_orthogonal_remainder"]]
    paper = [0.893, 0.887, 0.83, 0.60]
    x = np.arange(len(names))
    axes[1].bar(x, vals, color=PALETTE[2], label="here")
    axes[1].scatter(x, paper, marker="_", s=200, color="0.2", label="write-up", zorder=3)
    axes[1].axhline(0.5, color="0.5", lw=0.8, ls=":")
    axes[1].axhline(m["null_max_auc"], color=PALETTE[1], lw=0.9, ls="--",
                    label="best neuron, shuffled labels")
    axes[1].set_xticks(x, names, rotation=25, fontsize=7)
    axes[1].set_ylim(0.3, 1.18)
    axes[1].set_yticks(np.arange(0.3, 1.01, 0.1))
    axes[1].set_ylabel(f"ROC AUC ({m['target']} vs others)")
    axes[1].set_title("(b) selectivity")
    axes[1].legend(fontsize=5.5, loc="upper left", ncol=2, columnspacing=0.8)
    losses = [m["loss_clean"], m["loss_mean_ablated"], m["loss_zero_ablated"]]
    axes[2].bar(range(3), losses, color=[PALETTE[0], PALETTE[4], PALETTE[1]])
    axes[2].scatter(range(3), [0.167, 0.284, 0.559], marker="_", s=200, color="0.2",
                    label="write-up", zorder=3)
    axes[2].set_xticks(range(3), ["clean", "mean\nablated", "zero\nablated"], fontsize=7)
    axes[2].set_ylabel(f"loss on {m['target']} people (nats)")
    axes[2].set_title("(c) ablating it")
    axes[2].legend(fontsize=6, loc="lower right")
    cos = [m["cos_in_out"], m["cos_in_sport"], m["cos_in_sport_relative"]]
    axes[3].barh(range(3), cos, color=PALETTE[3])
    axes[3].scatter([0.456, 0.22, 0.184], range(3), marker="|", s=200, color="0.2",
                    label="write-up", zorder=3)
    via = "head" if result.direction == "head_ov" else "unembed"
    axes[3].set_yticks(range(3), ["W_out", f"{m['target']}\nvia {via}",
                                  f"{m['target']} vs\nothers via {via}"], fontsize=7)
    axes[3].axvline(0, color="0.5", lw=0.8)
    axes[3].set_xlabel("cosine with W_in")
    axes[3].set_title("(d) input-weight cosines")
    axes[3].legend(fontsize=6)
    fig.suptitle(f"The most {m['target']}-selective lookup neuron, read {result.where}",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, png, provenance)


def plot_norms(result: LookupResult, png: Path, provenance: Provenance) -> None:
    """MLP output norm at the read position, known against unknown names, by layer."""
    apply_style()
    nk, nu = result.norms_known.numpy(), result.norms_unknown.numpy()
    layers = np.arange(nk.shape[1])
    fig, ax = plt.subplots(figsize=(5.2, 3.3))
    w = 0.38
    for k, (vals, label) in enumerate([(nk, f"known names (n={len(nk)})"),
                                       (nu, f"unknown names (n={len(nu)})")]):
        bp = ax.boxplot(vals, positions=layers + (k - 0.5) * w, widths=w * 0.9,
                        patch_artist=True, showfliers=False, manage_ticks=False)
        for box in bp["boxes"]:
            box.set(facecolor=PALETTE[k], alpha=0.6)
        for med in bp["medians"]:
            med.set(color="black")
        ax.plot([], [], color=PALETTE[k], lw=6, alpha=0.6, label=label)
    for layer in result.layers:
        ax.axvspan(layer - 0.5, layer + 0.5, color="0.9", zorder=0)
    ax.set_xticks(layers, [f"MLP{l}" for l in layers])
    ax.set_ylabel(f"‖MLP output‖ {result.where}")
    ax.set_title("MLP output norm, known vs unknown names (shaded: lookup MLPs)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, png, provenance)


def plot_linearity(result: LookupResult, png: Path, provenance: Provenance) -> None:
    """The parallelogram test by lookup layer: MLP outputs (trained, shuffled weights, unknown
    names swapped) and residuals after the layer."""
    apply_style()
    series: Sequence[tuple[str, str, int]] = [
        ("mlp", "MLP output", 0), ("mlp_shuffled", "MLP output, shuffled MLP weights", 1),
        ("mlp_unknown_names", "MLP output, unknown names swapped", 2),
        ("resid", "residual after the layer", 3),
        ("resid_shuffled", "residual, shuffled MLP weights", 4),
    ]
    layers = result.layers
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    w = 0.8 / len(series)
    x = np.arange(len(layers))
    for k, (key, label, c) in enumerate(series):
        vals: Tensor = result.linearity[key]
        bp = ax.boxplot(vals.numpy(), positions=x + (k - (len(series) - 1) / 2) * w,
                        widths=w * 0.85, patch_artist=True, showfliers=False,
                        manage_ticks=False)
        for box in bp["boxes"]:
            box.set(facecolor=PALETTE[c], alpha=0.65)
        for med in bp["medians"]:
            med.set(color="black")
        ax.plot([], [], color=PALETTE[c], lw=6, alpha=0.65, label=label)
    ax.axhspan(0.6, 0.7, color=PALETTE[0], alpha=0.08, label="write-up MLPs: 60-70%")
    ax.axhspan(0.2, 0.4, color=PALETTE[1], alpha=0.08, label="write-up shuffled: 20-40%")
    ax.set_xticks(x, [f"layer {l}" for l in layers])
    ax.set_ylim(0, max(1.3, float(torch.cat([v.flatten() for v in result.linearity.values()])
                                  .quantile(0.95))))
    ax.set_ylabel("|f(A)+f(B)-f(C)-f(D)| / |f(A)+f(B)-f(C')-f(D')|")
    ax.set_title(f"How far the lookup MLPs break linear structure {result.where} "
                 f"(0 linear, 1 fully broken)", fontsize=9)
    ax.legend(fontsize=6, ncol=2, loc="upper left")
    fig.tight_layout()
    save_figure(fig, png, provenance)
