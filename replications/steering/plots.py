"""Figures of the steering replication (shared style, PNG + PDF with provenance)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from shared.figures import PALETTE, Provenance, apply_style, plt, save_figure

METHOD_STYLE = {
    "vector": ("ActAdd vector", PALETTE[0], "o"),
    "feature": ("anger SAE feature", PALETTE[1], "s"),
    "original": ("original vector", PALETTE[0], "o"),
    "handpicked": ("hand-picked features", PALETTE[1], "s"),
    "reconstruction": ("SAE reconstruction", PALETTE[2], "^"),
    "topk_pos": ("top-k positive", PALETTE[4], "v"),
    "topk_pos_neg": ("top-k positive + negative", PALETTE[3], "D"),
    "projected": ("padding features projected out", PALETTE[5], "P"),
}


def _label(labels: dict[str, Any], feature: int, n: int = 3) -> str:
    toks = labels.get(str(feature), {}).get("top_tokens", [])[:n]
    return _printable("F{} [{}]".format(feature, ", ".join(repr(t) for t, _ in toks)))


def _frontier(ax: Any, pts: dict[str, Any], method: str, annotate: bool) -> None:
    name, color, marker = METHOD_STYLE[method]
    loss, p = np.array(pts["loss"]), np.array(pts["p_success"])
    ax.plot(loss, p, linestyle="none", marker=marker, color=color, alpha=0.45, markersize=4)
    front = pts["front"]
    ax.plot(loss[front], p[front], marker=marker, color=color, label=name, markersize=5,
            drawstyle="steps-post")
    if annotate:
        for c, x, y in zip(pts["coeff"], loss, p):
            if c:
                ax.annotate(f"{c:g}", (x, y), textcoords="offset points", xytext=(3, 3),
                            fontsize=6, color=color)


def _pareto_axes(ax: Any, unsteered: dict[str, float], title: str) -> None:
    ax.scatter([unsteered["loss"]], [unsteered["p_success"]], marker="*", s=90, color="black",
               zorder=5, label="unsteered")
    ax.set_xlabel("spliced LM loss (nats)")
    ax.set_ylabel("P(successful rollout)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title)


def anger_pareto(front: dict[str, Any], coeff: float, png: Path, prov: Provenance) -> None:
    """Vector vs feature frontiers, the write-up's 10x points circled."""
    apply_style()
    a = front["anger"]
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for m in ("vector", "feature"):
        pts = a["methods"][m]
        _frontier(ax, pts, m, annotate=True)
        k = pts["coeff"].index(coeff)
        ax.scatter([pts["loss"][k]], [pts["p_success"][k]], s=260, facecolors="none",
                   edgecolors=METHOD_STYLE[m][1], linewidths=1.6, zorder=6)
    _pareto_axes(ax, a["unsteered"], f"Anger: ActAdd vector vs its top SAE feature "
                                     f"(circled: {coeff:g}x)")
    gap = a["feature_vs_vector"]["frontier_gap"]
    ax.text(0.98, 0.03, f"mean frontier gap (feature - vector): {gap:+.3f}",
            transform=ax.transAxes, ha="right", fontsize=7)
    ax.legend(loc="center right")
    save_figure(fig, png, prov)


def wedding_pareto(front: dict[str, Any], png: Path, prov: Provenance) -> None:
    """Each SAE-based variant against the original wedding vector."""
    apply_style()
    w = front["weddings"]
    panels = [(["handpicked"], "Hand-picked interpretable features", "handpicked_vs_original"),
              (["reconstruction"], "Difference of SAE reconstructions",
               "reconstruction_vs_original"),
              (["topk_pos", "topk_pos_neg"], "Top-k features (last positions)",
               "topk_pos_neg_vs_original"),
              (["projected"], "Padding (space) features projected out",
               "projected_vs_original")]
    fig, axes = plt.subplots(2, 2, figsize=(9.5, 7.2), sharey=True)
    for ax, (methods, title, key) in zip(axes.flat, panels):
        _frontier(ax, w["methods"]["original"], "original", annotate=True)
        for m in methods:
            _frontier(ax, w["methods"][m], m, annotate=True)
        _pareto_axes(ax, w["unsteered"], title)
        lines = [f"gap vs original: {m}: {w[f'{m}_vs_original']['frontier_gap']:+.3f}"
                 for m in methods]
        if key == "topk_pos_neg_vs_original":
            lines.append(f"pos+neg vs pos: {w['topk_pos_neg_vs_topk_pos']['frontier_gap']:+.3f}")
        ax.text(0.98, 0.03, "\n".join(lines), transform=ax.transAxes, ha="right", fontsize=7)
        ax.legend(loc="upper left", fontsize=7)
    fig.suptitle("Weddings: Pareto frontiers of SAE-based vectors against the original "
                 "(coefficients annotated)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, png, prov)


def steering_by_layer(sweep: dict[str, Any], png: Path, prov: Provenance) -> None:
    """P(success) of both ActAdd vectors added at each layer, against unsteered; beside it, the
    share of the cue's effect that patching the cue positions at each layer recovers."""
    apply_style()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    layers = sweep["layers"]
    experiments = (("anger", "anger ('Anger' - 'Calm')"), ("weddings", "weddings"))
    for (name, label), color in zip(experiments, (PALETTE[1], PALETTE[0])):
        r = sweep[name]
        ax.plot(layers, r["p_success"], marker="o", color=color,
                label=f"{label}, coefficient {r['coeff']:g}")
        ax.axhline(r["unsteered"], color=color, linestyle=":", linewidth=1)
        recovered = r["cue_patch_recovered"]
        bx.plot(range(len(recovered)), recovered, marker="o", color=color, label=label)
    for a in (ax, bx):
        a.axvline(sweep["steered_layer"], color="black", linewidth=1, label="layer steered here")
        a.axvline(sweep["writeup_depth"] * sweep["n_layers"], color="grey", linestyle="--",
                  linewidth=1, label=f"the write-up's depth ({sweep['writeup_depth']:.2f} x "
                  f"{sweep['n_layers']} layers)")
        a.set_xlabel("layer (hook_resid_pre)")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers: whole numbers
    ax.set_ylabel("P(successful rollout)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("ActAdd vectors added at each layer (dotted: unsteered)", fontsize=9)
    ax.legend(fontsize=7)
    bx.axhline(0, color="grey", linewidth=0.5)
    bx.set_ylabel("share of the cue's effect recovered")
    bx.set_title("Positive prompt's residual patched into the negative's\n"
                 "at the cue positions only (final-position log-probs)", fontsize=9)
    bx.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, png, prov)


def anger_decomposition(analysis: dict[str, Any], png: Path, prov: Provenance) -> None:
    """Top features on the last 'Anger' token, and the anger feature's dashboard."""
    apply_style()
    a, labels = analysis["anger"], analysis["labels"]
    tops = list(a["top_features"])
    if all(t["feature"] != a["anger_feature"]["feature"] for t in tops):
        tops.append(a["anger_feature"])  # selected by difference: may rank lower
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11.5, 4.2), gridspec_kw={"width_ratios": [1, 1.1]})
    y = np.arange(len(tops))[::-1]
    colors = ["#BBBBBB" if t["dense"] else
              (PALETTE[1] if t["feature"] == a["anger_feature"]["feature"] else PALETTE[0])
              for t in tops]
    ax.barh(y, [t["activation"] for t in tops], color=colors)
    ax.set_yticks(y, [_label(labels, t["feature"]) for t in tops], fontsize=7)
    for yy, t in zip(y, tops):
        ax.text(t["activation"], yy, f" {100 * t['l1_share']:.0f}%", va="center", fontsize=7)
    ax.set_xlabel("feature activation (= norm of its decoder contribution)")
    ax.set_title(f"SAE features on {a['decomposed_token']!r} of "
                 f"{''.join(a['positive_tokens'][1:])!r} (% of L1; grey: dense)", fontsize=9)
    bx.axis("off")
    af = a["anger_feature"]
    lines = [(f"Anger feature F{af['feature']}: activation {af['activation']:.2f}, "
             f"{100 * af['l1_share']:.0f}% of the token's L1"),
             (f"(selected by {a['feature_selection']}; activation on the negative prompt "
             f"{a['anger_feature_negative_activation']:.2f})"),
             "", "Tokens it fires on most (mean activation):",
             "   " + ", ".join(f"{t!r} {v:.2f}" for t, v in
                              labels[str(af["feature"])]["top_tokens"]),
             "", "Direct logit effect (top promoted tokens):",
             "   " + ", ".join(repr(t) for t, _ in a["anger_feature_logits"]),
             "", "Max-activating contexts:"]
    for c in a["anger_feature_contexts"]:
        text = _printable(f"{c['before']}[[{c['token']}]]{c['after']}").replace("\n", " / ")
        lines.append(f"   {c['activation']:5.2f}  " + textwrap.shorten(text, 80))
    bx.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=7.5, family="DejaVu Sans Mono",
            transform=bx.transAxes)
    fig.tight_layout()
    save_figure(fig, png, prov)


def wedding_decomposition(analysis: dict[str, Any], png: Path, prov: Provenance) -> None:
    """Per-position features of the wedding vector (positive minus negative activation)."""
    apply_style()
    w, labels = analysis["weddings"], analysis["labels"]
    rows, groups = [], []
    pad = set(w["padding_positions"])
    picked = {(t["position"], t["feature"]) for t in w["handpicked"]}
    padf = {t["feature"] for t in w["padding_features"]}
    for p, feats in enumerate(w["per_position"]):
        if p == 0 or not feats:
            continue  # BOS: the same in both prompts
        head = f"{p}: {w['positive_tokens'][p]!r} vs {w['negative_tokens'][p]!r}"
        groups.append((len(rows), head))
        for f in feats:
            rows.append((p, f, (p, f["feature"]) in picked, f["feature"] in padf and p in pad))
    fig, ax = plt.subplots(figsize=(8.5, 0.23 * len(rows) + 1.6))
    y = -np.arange(len(rows)) - np.searchsorted([g for g, _ in groups], np.arange(len(rows)),
                                                side="right")
    colors = [PALETTE[1] if hp else PALETTE[5] if sp else PALETTE[0] for _, _, hp, sp in rows]
    ax.barh(y, [f["diff"] for _, f, _, _ in rows], color=colors)
    ax.set_yticks(y, [_label(labels, f["feature"]) for _, f, _, _ in rows], fontsize=6.5)
    for start, head in groups:
        ax.text(0, y[start] + 0.9, head, fontsize=7.5, fontweight="bold")
    ax.set_xlabel("activation on positive prompt - on negative prompt (dense features left out)")
    ax.set_title("Weddings vector: largest positive feature differences per position\n"
                 "(orange: hand-picked; light blue: padding features)", fontsize=9)
    save_figure(fig, png, prov)


def _printable(text: str) -> str:
    """Text the monospace font can draw: control characters and exotic glyphs become '?'."""
    return "".join(c if c == "\n" or (c.isprintable() and (ord(c) < 0x250 or
                                                            0x2000 <= ord(c) < 0x2070))
                   else "?" for c in text)


def completions_table(
    sections: list[tuple[str, list[tuple[str, list[str]]]]], prompt: str, width: int,
    max_chars: int, png: Path, prov: Provenance, title: str,
) -> None:
    """Completions as wrapped text with a tick or cross and the matched vocabulary words."""
    apply_style()
    lines: list[tuple[str, dict]] = []
    for head, items in sections:
        lines.append((head, {"fontweight": "bold", "fontsize": 8.5}))
        for text, matched in items:
            lead = " " if text[:1].isspace() else ""  # the space after the prompt
            flat = lead + " ".join(_printable(text).split())
            if len(flat) > max_chars:
                flat = flat[:max_chars].rstrip() + "\u2026"
            mark = "\u2713 " + ", ".join(dict.fromkeys(matched)) if matched else "\u2717 (none)"
            wrapped = textwrap.wrap(f"{prompt}{flat}", width)
            for i, part in enumerate(wrapped):
                lines.append(("    " + part, {"fontsize": 7.5}))
            lines.append((f"        [{mark}]", {"fontsize": 7, "color": PALETTE[2] if matched
                                                 else PALETTE[1]}))
        lines.append(("", {"fontsize": 4}))
    step, top = 0.16, 0.55  # inches per line, inches above the first line
    height = step * len(lines) + top + 0.2
    fig = plt.figure(figsize=(8.2, height))
    fig.text(0.02, 1 - 0.2 / height, title, fontsize=10, va="top")
    for i, (text, kw) in enumerate(lines):
        fig.text(0.02, 1 - (top + step * i) / height, text, family="DejaVu Sans Mono",
                 va="top", **kw)
    save_figure(fig, png, prov)
