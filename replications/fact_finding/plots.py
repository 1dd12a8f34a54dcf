"""The fact-finding write-up's figures, one function per figure (each takes results and writes
one PNG + PDF via shared.figures):

- the circuit (circuit.py, circuit_steps.py): patching, attribute heads, effective model,
  probes, path patching;
- the lookup MLPs' neurons (neuron_facts.py, neuron_lookup.py): one entity's fact
  correlations, non-linear excess, the baseball neuron, known vs unknown norms, linearity;
- toy models of memorisation (toy_memorisation.py): training curves and probes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.patches import Rectangle
from torch import Tensor

from replications.fact_finding.circuit import (
    COMPONENT_LABELS,
    COMPONENTS,
    PATH_METRICS,
    PUBLISHED,
    CircuitSettings,
)
from replications.fact_finding.circuit_results import CircuitResults
from replications.fact_finding.neuron_facts import EntityEffects
from replications.fact_finding.neuron_lookup import LookupResult
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
    ax.axvline(PUBLISHED["effective_head_accuracy"], color=PALETTE[4], lw=1.2,
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


# ---------------------------------------------------------------------------------------------
# The lookup MLPs' neurons


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


def _lookup_figure(
    draw: Callable[[LookupResult], plt.Figure],
) -> Callable[[LookupResult, Path, Provenance], None]:
    """A lookup figure's plot function: `draw` in the shared style, lay out tight, save PNG + PDF."""
    @functools.wraps(draw)
    def plot(result: LookupResult, png: Path, provenance: Provenance) -> None:
        apply_style()
        fig = draw(result)
        fig.tight_layout()
        save_figure(fig, png, provenance)
    return plot


def _boxes(ax: plt.Axes, values: np.ndarray, positions: np.ndarray, width: float, colour: str,
           alpha: float, label: str) -> None:
    """Box plots in one colour (no fliers, black medians) with one legend entry."""
    bp = ax.boxplot(values, positions=positions, widths=width, patch_artist=True,
                    showfliers=False, manage_ticks=False)
    for box in bp["boxes"]:
        box.set(facecolor=colour, alpha=alpha)
    for med in bp["medians"]:
        med.set(color="black")
    ax.plot([], [], color=colour, lw=6, alpha=alpha, label=label)


@_lookup_figure
def plot_excess(result: LookupResult) -> plt.Figure:
    """Per person: total non-linear excess of the lookup MLPs on the sport direction against the
    part the GELUs make and pass straight to it; the ratio's distribution."""
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
    return fig


@_lookup_figure
def plot_selective(result: LookupResult) -> plt.Figure:
    """The most target-selective lookup neuron: activations, AUCs, ablated losses, cosines."""
    sel = result.selective
    if sel is None:
        return _unmeasured_selective(result)
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
    return fig


def _unmeasured_selective(result: LookupResult) -> plt.Figure:
    """Why there is no selective neuron: the known people per sport, one class empty or whole."""
    names, counts = list(result.n_by_answer), list(result.n_by_answer.values())
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(range(len(names)), counts, color=PALETTE[1])
    ax.set_xticks(range(len(names)), names, fontsize=7)
    ax.set_ylabel("known people")
    n, t = sum(counts), result.target
    ax.set_title(f"No {t}-selective neuron measured: {result.n_by_answer[t]} of the {n}\n"
                 f"known people play {t}, and an ROC AUC needs both classes", fontsize=9)
    return fig


@_lookup_figure
def plot_norms(result: LookupResult) -> plt.Figure:
    """MLP output norm at the read position, known against unknown names, by layer."""
    nk, nu = result.norms_known.numpy(), result.norms_unknown.numpy()
    layers = np.arange(nk.shape[1])
    fig, ax = plt.subplots(figsize=(5.2, 3.3))
    w = 0.38
    for k, (vals, label) in enumerate([(nk, f"known names (n={len(nk)})"),
                                       (nu, f"unknown names (n={len(nu)})")]):
        _boxes(ax, vals, layers + (k - 0.5) * w, w * 0.9, PALETTE[k], 0.6, label)
    for layer in result.layers:
        ax.axvspan(layer - 0.5, layer + 0.5, color="0.9", zorder=0)
    ax.set_xticks(layers, [f"MLP{l}" for l in layers])
    ax.set_ylabel(f"‖MLP output‖ {result.where}")
    ax.set_title("MLP output norm, known vs unknown names (shaded: lookup MLPs)")
    ax.legend(fontsize=7)
    return fig


@_lookup_figure
def plot_linearity(result: LookupResult) -> plt.Figure:
    """The parallelogram test by lookup layer: MLP outputs (trained, shuffled weights, unknown
    names swapped) and residuals after the layer."""
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
        _boxes(ax, vals.numpy(), x + (k - (len(series) - 1) / 2) * w, w * 0.85, PALETTE[c], 0.65,
               label)
    ax.axhspan(0.6, 0.7, color=PALETTE[0], alpha=0.08, label="write-up MLPs: 60-70%")
    ax.axhspan(0.2, 0.4, color=PALETTE[1], alpha=0.08, label="write-up shuffled: 20-40%")
    ax.set_xticks(x, [f"layer {l}" for l in layers])
    ax.set_ylim(0, max(1.3, float(torch.cat([v.flatten() for v in result.linearity.values()])
                                  .quantile(0.95))))
    ax.set_ylabel("|f(A)+f(B)-f(C)-f(D)| / |f(A)+f(B)-f(C')-f(D')|")
    ax.set_title(f"How far the lookup MLPs break linear structure {result.where} "
                 f"(0 linear, 1 fully broken)", fontsize=9)
    ax.legend(fontsize=6, ncol=2, loc="upper left")
    return fig


# ---------------------------------------------------------------------------------------------
# Toy models of memorisation (toy_memorisation.py)

TASK_TITLES = {"random": "random labels (memorise)", "rule": "rule f(a) XOR g(b) (generalise)"}
SITE_LABELS = {"embed": "embedding\nsum", "logits": "logits"}


def _site_label(site: str) -> str:
    if site in SITE_LABELS:
        return SITE_LABELS[site]
    kind, layer = site[:-1], site[-1]
    return f"MLP{layer}\nneurons" if kind == "mlp" else f"resid\nafter {layer}"


def _line(ax: plt.Axes, xs: list[int], ys: list[float], label: str, **kw) -> None:
    """A line over the sites a model has; across sites it lacks (a shallower model's jump to
    its logits) only a thin dotted link, so no value is implied there."""
    start = 0
    for j in range(1, len(xs) + 1):
        if j == len(xs) or xs[j] != xs[j - 1] + 1:
            ax.plot(xs[start:j], ys[start:j], label=label if start == 0 else None, **kw)
            if j < len(xs):
                ax.plot(xs[j - 1:j + 1], ys[j - 1:j + 1], color=kw["color"], lw=0.7, ls=":")
            start = j


def memorisation_training_figure(results: dict) -> plt.Figure:
    tasks = list(results["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks) + 0.4, 3.0),
                             sharey=True, squeeze=False)
    for ax, t in zip(axes[0], tasks):
        for i, (key, m) in enumerate(results["tasks"][t].items()):
            colour = PALETTE[i]
            steps = [r["step"] for r in m["history"]]
            ax.plot(steps, [r["train_acc"] for r in m["history"]], color=colour, lw=1.5,
                    label=f"{m['depth']}-layer, trained pairs")
            ax.plot(steps, [r["heldout_acc"] for r in m["history"]], color=colour, lw=1.5,
                    ls="--", label=f"{m['depth']}-layer, held-out pairs")
        ax.axhline(results["chance"]["label"], color="0.5", lw=0.8, ls=":", label="chance")
        ax.set_title(TASK_TITLES.get(t, t))
        ax.set_xlabel("full-batch Adam step")
        ax.set_ylim(0.3, 1.03)
    axes[0, 0].set_ylabel("label accuracy")
    axes[0, -1].legend(loc="lower right", fontsize=7)
    fig.suptitle(f"Memorising {results['n_train']} of {results['n_pairs']} pairs (a, b)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def memorisation_probes_figure(results: dict) -> plt.Figure:
    tasks = list(results["tasks"])
    # One x axis for all depths: the deepest model's sites in forward order.
    deepest = max((m for t in tasks for m in results["tasks"][t].values()),
                  key=lambda m: m["depth"])
    order = deepest["sites"]
    xpos = {s: i for i, s in enumerate(order)}
    rows = [("probe_label", "label"), ("probe_first", "first input's identity")]
    fig, axes = plt.subplots(len(rows), len(tasks), figsize=(3.9 * len(tasks) + 0.4, 5.6),
                             sharex=True, sharey=True, squeeze=False)
    for r, (key, what) in enumerate(rows):
        chance = results["chance"]["label" if key == "probe_label" else "first"]
        for c, t in enumerate(tasks):
            ax = axes[r, c]
            for i, m in enumerate(results["tasks"][t].values()):
                _line(ax, [xpos[s] for s in m["sites"]], [m[key][s] for s in m["sites"]],
                      color=PALETTE[i], marker="o", ms=4, lw=1.4,
                      label=f"{m['depth']}-layer: linear probe")
                if key == "probe_label":
                    ro = m["readout_label"]
                    ax.plot([xpos[s] for s in ro], list(ro.values()), color=PALETTE[i],
                            marker="s", ms=4, mfc="white", lw=1.0, ls="--",
                            label=f"{m['depth']}-layer: model's readout (partial sum)")
            ax.axhline(chance, color="0.5", lw=0.8, ls=":", label="chance")
            ax.set_ylim(-0.02, 1.05)
            if r == 0:
                ax.set_title(TASK_TITLES.get(t, t))
            if c == 0:
                ax.set_ylabel(f"accuracy: {what}")
            ax.set_xticks(range(len(order)), [_site_label(s) for s in order], fontsize=7)
        axes[r, -1].legend(loc="lower left", fontsize=6.5)
    fig.suptitle("Probes on held-out trained pairs: what the intermediate states represent",
                 fontsize=10)
    fig.tight_layout()
    return fig
