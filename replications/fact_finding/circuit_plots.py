"""Figures of the circuit part (circuit.py): patching, attribute heads, effective model, probes,
path patching. Each function takes the results and writes one PNG + PDF via shared.figures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.patches import Rectangle

from replications.fact_finding.circuit import (
    COMPONENT_LABELS,
    COMPONENTS,
    PATH_METRICS,
    WRITEUP,
    CircuitSettings,
)
from replications.fact_finding.circuit_results import CircuitResults
from shared.figures import PALETTE, Provenance, apply_style, plt, save_figure

WHERE = {"surname": "surname", "final": "final token"}
PATH_TITLES = {
    "head_probe_accuracy": "head-OV / unembedding readout accuracy",
    "logistic_probe_accuracy": "logistic probe accuracy (clean-fitted)",
    "sport_accuracy": "model accuracy among the answers",
    "vocab_accuracy": "model top-1 accuracy (full vocabulary)",
    "loss": "loss of the answer token (nats)",
    "kl": "KL(clean || ablated), next token",
}


def _annotate(ax, values: np.ndarray, fmt: str, size: float, im) -> None:  # noqa: ANN001
    """Write each finite cell's value, white on dark cells of `im`'s colour map."""
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            r, g, b, _ = im.cmap(im.norm(v))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=size,
                    color="white" if dark else "black")


def plot_patching(
    res: CircuitResults, settings: CircuitSettings, position_labels: Sequence[str],
    png: Path, prov: Provenance,
) -> None:
    """Layer x position heat maps of the share of the logit difference destroyed by noising."""
    apply_style()
    eff = res.patching.effect.numpy()
    n_layers, n_pos = eff.shape[1], eff.shape[2]
    lim = max(1.0, float(np.abs(eff).max()))
    height = min(9.0, 1.6 + 0.22 * n_layers)
    fig, axes = plt.subplots(1, 3, figsize=(3.0 * 3 + 0.8, height), sharey=True,
                             constrained_layout=True)
    for c, ax in enumerate(axes):
        im = ax.imshow(eff[c], cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", origin="lower",
                       interpolation="nearest")
        title = COMPONENT_LABELS[COMPONENTS[c]]
        ax.set_xticks(range(n_pos), position_labels, rotation=45, ha="right")
        ax.grid(False)
        if n_layers <= 12:
            _annotate(ax, eff[c], ".2f", 6.5, im)
        if COMPONENTS[c] == "mlp_out":
            lk = settings.lookup_mlps
            col = 1 if settings.read_position == "surname" else n_pos - 1
            ax.add_patch(Rectangle((col - 0.5, lk[0] - 0.5), 1, len(lk), fill=False, lw=1.6,
                                   ec=PALETTE[4]))
            title += f"\n(box: lookup MLPs at the {WHERE[settings.read_position]})"
        if np.isnan(eff[c]).all():
            ax.text(0.5, 0.5, "not computed: one answer only\nor no corruption effect", ha="center",
                    va="center", transform=ax.transAxes, fontsize=8)
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("layer")
    fig.colorbar(im, ax=axes, shrink=0.9, pad=0.01).set_label("share of logit diff. destroyed")
    p = res.patching
    fig.suptitle(f"Activation patching (noising) on {p.n_prompts} known prompts: another "
                 f"person's activation patched into the clean run\nlogit difference clean "
                 f"{p.clean_logit_diff:.2f}, corrupted {p.corrupt_logit_diff:.2f}; P(correct) "
                 f"among answers {p.clean_prob:.2f} -> {p.corrupt_prob:.2f}", fontsize=9)
    save_figure(fig, png, prov)
    plt.close(fig)


def plot_heads(res: CircuitResults, settings: CircuitSettings, png: Path,
               prov: Provenance) -> None:
    """Direct logit attribution of every head to the correct answer; its attention to the
    surname."""
    apply_style()
    dla = res.heads.dla.numpy()
    att = res.heads.attention_to_surname.numpy()
    n_layers, n_heads = dla.shape
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.5, min(8.0, 2.4 + 0.17 * n_layers)),
                                  gridspec_kw={"width_ratios": [1.15, 1]}, constrained_layout=True)
    lim = float(np.abs(dla).max()) or 1.0
    im = ax.imshow(dla, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", origin="lower",
                   interpolation="nearest")
    ax.grid(False)
    step = max(1, n_heads // 16)
    ax.set_xticks(range(0, n_heads, step))
    ax.set_yticks(range(0, n_layers, max(1, n_layers // 16)))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    if n_layers * n_heads <= 64:
        _annotate(ax, dla, ".2f", 6.5, im)
    fig.colorbar(im, ax=ax, shrink=0.9).set_label("mean DLA to the correct answer (logits)")
    top, used = res.heads.top, res.head
    ax.add_patch(Rectangle((top[1] - 0.5, top[0] - 0.5), 1, 1, fill=False, lw=1.8,
                           ec="black"))
    title = f"Direct logit attribution at the final token\ntop head L{top[0]}H{top[1]} (black)"
    if tuple(used) != tuple(top):
        ax.add_patch(Rectangle((used[1] - 0.5, used[0] - 0.5), 1, 1, fill=False, lw=1.8,
                               ec=PALETTE[4], ls="--"))
        title += f"; attribute head used L{used[0]}H{used[1]} (dashed)"
    ax.set_title(title, fontsize=9)
    ax2.scatter(att.flatten(), dla.flatten(), s=10, color=PALETTE[0], alpha=0.6)
    order = np.argsort(-dla.flatten())[:5]
    for k in order:
        layer, head = divmod(int(k), n_heads)
        ax2.annotate(f"L{layer}H{head}", (att[layer, head], dla[layer, head]), fontsize=7,
                     xytext=(3, 3), textcoords="offset points")
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set_xlabel("mean attention from the final token to the surname")
    ax2.set_ylabel("mean DLA to the correct answer")
    ax2.set_title("Attribution against attention to the surname")
    save_figure(fig, png, prov)
    plt.close(fig)


def plot_effective(res: CircuitResults, settings: CircuitSettings, png: Path,
                   prov: Provenance) -> None:
    """Accuracy of the effective model read by the head's OV directions and by a probe."""
    apply_style()
    a = res.effective_accuracy
    acc = res.probes.accuracy
    end = settings.end_layer
    h = res.head
    surname = settings.read_position == "surname"
    reader = f"L{h[0]}H{h[1]} OV" if surname else "unembedding"
    rows = [
        ("full model: next-token logits (3-way)", a["full_model_answer"], None, PALETTE[7]),
        (f"full model: {reader} ({settings.head_readout}) after layer {end}",
         a["full_model_head"],
         None, PALETTE[5]),
        (f"effective model: {reader}, raw scores", a["effective_head_raw"], None, PALETTE[0]),
        (f"effective model: {reader}, centred scores", a["effective_head_centred"], None,
         PALETTE[6]),
        ("effective model: logistic probe", a["effective_probe"],
         float(acc[f"effective_{end}"].std(unbiased=False)), PALETTE[2]),
        (f"lookup MLPs ablated too: {reader} ({settings.head_readout})", a["no_lookup_head"],
         None, PALETTE[1]),
        ("lookup MLPs ablated too: logistic probe", a["no_lookup_probe"],
         float(acc["effective_no_lookup"].std(unbiased=False)), PALETTE[3]),
    ]
    fig, ax = plt.subplots(figsize=(7.2, 3.8), constrained_layout=True)
    y = np.arange(len(rows))[::-1]
    for yi, (label, v, err, col) in zip(y, rows):
        ax.barh(yi, v, xerr=err, color=col, height=0.65, capsize=3)
        ax.text(v + (err or 0) + 0.01, yi, f"{v:.1%}", va="center", fontsize=8)
    ax.set_yticks(y, [r[0] for r in rows])
    ax.axvline(a["chance"], color="black", ls=":", lw=1, label=f"chance {a['chance']:.0%}")
    ax.axvline(res.majority_baseline, color="grey", ls="--", lw=1,
               label=f"majority answer {res.majority_baseline:.0%}")
    ax.axvline(WRITEUP["effective_head_accuracy"], color=PALETTE[4], lw=1.2,
               label="write-up: 86% (Pythia 2.8B, L16H20)")
    ax.set_xlim(0, 1.12)
    ax.set_xlabel(f"accuracy on {res.n_prompts} known prompts")
    attn = ",".join(map(str, settings.token_attn_layers))
    mlps = ",".join(map(str, settings.lookup_mlps))
    emb = ",".join(map(str, settings.embedding_mlps))
    where = "the name tokens" if surname else "the name and final tokens"
    ax.set_title(f"Effective model: attention {attn} + MLP {emb} + lookup MLPs {mlps} at "
                 f"{where}, the rest mean-ablated;\nsport read from the "
                 f"{WHERE[settings.read_position]} after layer {end} with {reader} or a probe "
                 f"({len(acc[f'effective_{end}'])} splits)", fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.4, -0.18), ncol=3, fontsize=7)
    ax.grid(axis="y", visible=False)
    save_figure(fig, png, prov)
    plt.close(fig)


def plot_probes(res: CircuitResults, settings: CircuitSettings, png: Path,
                prov: Provenance) -> None:
    """Validation accuracy of sport probes per layer (mean +- std over splits)."""
    apply_style()
    acc = res.probes.accuracy
    fig, ax = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
    lk = settings.lookup_mlps
    ax.axvspan(lk[0] - 0.4, lk[-1] + 0.4, color=PALETTE[4], alpha=0.12, label="lookup MLPs")

    def series(names: list[str], xs: list[float], label: str, col: str, marker: str) -> None:
        m = np.array([float(acc[k].mean()) for k in names])
        s = np.array([float(acc[k].std(unbiased=False)) for k in names])
        ax.errorbar(xs, m, yerr=s, color=col, marker=marker, ms=4, capsize=3, label=label)

    where = "surname" if settings.read_position == "surname" else "final-token"
    series([f"full_{layer}" for layer in settings.probe_layers], list(settings.probe_layers),
           f"full model, {where} residual", PALETTE[0], "o")
    series([f"effective_{layer}" for layer in lk], [x + 0.08 for x in lk],
           f"effective model, {where} residual", PALETTE[2], "s")
    series(["summed_tokens"], [-1.0], "summed raw name embeddings", PALETTE[1], "D")
    ax.axhline(1 / res.n_answers, color="black", ls=":", lw=1, label="chance")
    ax.axhline(res.majority_baseline, color="grey", ls="--", lw=1, label="majority answer")
    ticks = [-1, *settings.probe_layers]
    ax.set_xticks(ticks, ["tokens", *map(str, settings.probe_layers)])
    ax.set_xlabel("residual after layer")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Logistic probes for the sport ({len(next(iter(acc.values())))} random "
                 f"{settings.probe_train_fraction:.0%}/{1 - settings.probe_train_fraction:.0%} "
                 f"splits of {res.n_prompts} names)")
    ax.legend(loc="lower right", fontsize=7, ncol=2)
    save_figure(fig, png, prov)
    plt.close(fig)


def plot_paths(res: CircuitResults, settings: CircuitSettings, png: Path,
               prov: Provenance) -> None:
    """One matrix per metric: path MLP_i -> MLP_j mean-ablated (diagonal: whole MLP_i)."""
    apply_style()
    pp = res.paths
    k = len(pp.layers)
    ncols = 3
    nrows = math.ceil(len(PATH_METRICS) / ncols)
    size = 1.2 + 0.45 * k
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * (size + 1.1), nrows * size + 0.6),
                             constrained_layout=True)
    diag = np.eye(k, dtype=bool)
    for ax, name in zip(axes.flat, PATH_METRICS):
        m = pp.matrices[name].numpy()
        paths = np.where(diag, np.nan, m)
        clean = pp.clean[name]
        higher_is_better = "accuracy" in name
        # Colour spans the paths and the clean value, so colour reads as damage from clean.
        finite = paths[np.isfinite(paths)]
        lo, hi = min(finite.min(), clean), max(finite.max(), clean)
        if hi - lo < 1e-6:
            lo, hi = lo - 0.01, hi + 0.01
        im = ax.imshow(paths, cmap="viridis" if higher_is_better else "magma_r", vmin=lo,
                       vmax=hi, origin="upper", interpolation="nearest")
        ax.grid(False)
        fmt = ".2f" if higher_is_better else ".3f"
        _annotate(ax, paths, fmt, 6.5, im)
        for i in range(k):
            ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fc="0.88", ec="white",
                                   hatch="///", lw=0))
            ax.text(i, i, format(m[i, i], fmt), ha="center", va="center", fontsize=6.5,
                    color="black", bbox={"fc": "0.88", "ec": "none", "pad": 0.5})
        ax.set_xticks(range(k), [f"MLP{x}" for x in pp.layers], rotation=45)
        ax.set_yticks(range(k), [f"MLP{x}" for x in pp.layers])
        ax.set_xlabel("target (input ablated)")
        ax.set_ylabel("source (output mean-ablated)")
        ax.set_title(f"{PATH_TITLES[name]}\nclean {clean:.3f}", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in list(axes.flat)[len(PATH_METRICS):]:
        ax.axis("off")
    where = WHERE[settings.read_position]
    fig.suptitle(f"Path patching between the lookup MLPs at the {where}: MLP_i's output "
                 "mean-ablated only in MLP_j's input (i < j);\ngrey diagonal: MLP_i "
                 "mean-ablated entirely (not on the colour scale)", fontsize=9)
    save_figure(fig, png, prov)
    plt.close(fig)
