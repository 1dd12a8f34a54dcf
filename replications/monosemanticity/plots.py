"""Figures of the monosemanticity replication, from the results of `analysis.py`.

Each function takes analysis results and returns a matplotlib Figure in the shared style
(save it with shared.figures.save_figure). Titles state the write-up's value where it gives one.
"""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axis import Axis
from matplotlib.patches import Rectangle
from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter
from torch import Tensor

from replications.monosemanticity.analysis import (
    CLASS_NAMES,
    DENSE,
    ONE_SPARSE,
    PUBLISHED,
    TEN_SPARSE,
    FrequencySummary,
    OrthogonalRetrain,
    UltraLowCluster,
)
from replications.monosemanticity.case_studies import LOGIT_NOTE, CaseStudy, DecodeFn
from replications.monosemanticity.neuron_basis import (
    KurtosisComparison,
    NeuronSparsity,
    NullspaceComparison,
)
from shared.figures import PALETTE, apply_style

NORMAL_C, ULTRA_C, DEAD_C, GAUSS_C = PALETTE[0], PALETTE[1], "#999999", PALETTE[0]
REAL_C = PALETTE[1]
CLASS_COLOURS = {DENSE: PALETTE[0], ONE_SPARSE: PALETTE[1], TEN_SPARSE: PALETTE[2]}
MONO = "DejaVu Sans Mono"
MONO_ADVANCE = 0.602  # DejaVu Sans Mono's advance width, in ems


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def _np(x: Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy()


def _empty(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _plain_log_ticks(axis: Axis, top: float) -> None:
    """Log-axis ticks at 1, 2, 5, 10, 20, ... labelled as plain numbers (no 2x10^0 labels)."""
    ticks = [m * 10**e for e in range(0, 7) for m in (1, 2, 5) if m * 10**e <= top]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())


# ---------------------------------------------------------------------------------------------
# 1. Frequencies.


def _frequency_bins(n_tokens: int) -> tuple[np.ndarray, float]:
    """Bins of width 0.1 from the measurement floor (1 firing in n_tokens) to 1."""
    # The epsilon keeps a feature that fired exactly once inside the first bin despite rounding.
    floor = math.floor(math.log10(1.0 / n_tokens) * 10 - 1e-6) / 10
    return np.arange(floor, 0.1 + 1e-9, 0.1), floor


def _frequency_axes(ax: plt.Axes, freq: FrequencySummary, colour_split: bool,
                    label: str | None, colour: str, dead_offset: float) -> tuple[float, float]:
    """Histogram of log10 frequency with dead features as a separate bar left of the floor.

    Returns the x position of the dead bar and the floor.
    """
    bins, floor = _frequency_bins(freq.n_tokens)
    log_f = np.log10(np.clip(_np(freq.freqs), 1e-300, None))
    dead_x = floor - 0.6
    n_dead = int(freq.dead.sum())
    if colour_split:
        ax.hist(log_f[_np(freq.normal.double()) > 0], bins=bins, color=NORMAL_C,
                label=f"normal ({int(freq.normal.sum())})")
        ax.hist(log_f[_np(freq.ultra_low.double()) > 0], bins=bins, color=ULTRA_C,
                label=f"ultra-low ({int(freq.ultra_low.sum())})")
        ax.bar([dead_x], [n_dead], width=0.3, color=DEAD_C, label=f"never fired ({n_dead})")
    else:
        ax.hist(log_f[_np(freq.dead.double()) == 0], bins=bins, histtype="step", linewidth=1.4,
                color=colour, label=label)
        ax.bar([dead_x + dead_offset], [n_dead], width=0.14, color="none", edgecolor=colour,
               linewidth=1.4)
    ax.axvline(math.log10(freq.threshold), color="black", linestyle="--", linewidth=1)
    # Dead features have no log frequency: a grey rule sets their bar apart from the axis.
    ax.axvline(dead_x + 0.3, color="#bbbbbb", linewidth=0.8)
    ticks = list(range(math.ceil(floor), 1))
    ax.set_xticks([dead_x, *ticks], ["never\nfired", *[str(t) for t in ticks]])
    ax.set_xlim(dead_x - 0.4, 0.1)
    ax.set_xlabel("log10 firing frequency (share of evaluation tokens)")
    ax.set_ylabel("features")
    return dead_x, floor


def plot_frequency_histogram(freq: FrequencySummary) -> plt.Figure:
    """Log10 firing frequencies: normal and ultra-low features coloured, dead ones as a
    separate 'never fired' bar (the write-up's spike at -6.5), threshold dashed."""
    apply_style()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    _frequency_axes(ax, freq, colour_split=True, label=None, colour=NORMAL_C, dead_offset=0.0)
    ax.annotate(f"ultra-low\n< {freq.threshold:g}", xy=(math.log10(freq.threshold), 1),
                xycoords=("data", "axes fraction"), xytext=(-4, -4),
                textcoords="offset points", ha="right", va="top", fontsize=8)
    ax.legend(loc="upper right", frameon=True, framealpha=0.9)
    ax.set_title(
        f"Feature frequencies over {freq.n_tokens:,} tokens: ultra-low "
        f"{_pct(freq.ultra_low_fraction)} (write-up ~60%), dead {_pct(freq.dead_fraction)} "
        f"(write-up 0%)\nfired once = {math.log10(1 / freq.n_tokens):.1f}; dead features "
        f"have no log frequency and are shown apart", fontsize=9,
    )
    return fig


# ---------------------------------------------------------------------------------------------
# 2. The ultra-low cluster.


def _cluster_panels(axes: Sequence[plt.Axes], cluster: UltraLowCluster) -> None:
    ax_cos, ax_proj, ax_sv = axes
    thr = cluster.cos_threshold
    lo = min(float(cluster.enc_cos_with_mean.min()), float(cluster.dec_cos_with_mean.min()))
    bins = np.linspace(min(0.0, math.floor(lo * 10) / 10), 1, 81)
    ax_cos.hist(_np(cluster.dec_cos_with_mean), bins=bins, color=ULTRA_C, alpha=0.6,
                label="decoder rows\n(vs decoder mean)")
    ax_cos.hist(_np(cluster.enc_cos_with_mean), bins=bins, color=NORMAL_C, alpha=0.8,
                label="encoder vectors")
    ax_cos.axvline(thr, color="black", linestyle="--", linewidth=1)
    ax_cos.set_yscale("log")
    ax_cos.set_ylim(0.7, ax_cos.get_ylim()[1] * 4)  # head-room for the legend
    ax_cos.set_xlabel("cosine with the cluster's mean")
    ax_cos.set_ylabel("ultra-low features")
    ax_cos.legend(loc="upper left", frameon=False, fontsize=7)
    ax_cos.set_title(f"encoder cos > {thr:g}: {_pct(cluster.cos_gt_share)}\n(write-up 97.5%)")

    proj = _np(cluster.projections)
    ax_proj.hist(proj, bins=40, color=NORMAL_C)
    ax_proj.set_xlabel("encoder vector · unit mean direction")
    ax_proj.set_ylabel("ultra-low features")
    ax_proj.set_title("projection onto the mean direction\n(write-up: bimodal)")

    k = np.arange(1, cluster.enc_spectrum.numel() + 1)
    for spec, name, colour, style in (
        (cluster.enc_spectrum, "encoder", NORMAL_C, dict(marker="o", markersize=3)),
        (cluster.dec_spectrum, "decoder", ULTRA_C, dict(marker="s", markersize=3)),
        (cluster.gaussian_spectrum, "Gaussian rows\n(same shape)", "black",
         dict(linestyle="--", linewidth=1)),
    ):
        ax_sv.plot(k, _np(spec), color=colour, label=name, **style)
    spectra = torch.cat([cluster.enc_spectrum, cluster.dec_spectrum, cluster.gaussian_spectrum])
    spectra = spectra[torch.isfinite(spectra) & (spectra > 0)]
    if spectra.numel() and float(spectra.max() / spectra.min()) > 20:
        ax_sv.set_yscale("log")  # only when the spectra span orders of magnitude
    else:
        ax_sv.set_ylim(bottom=0)
    ax_sv.set_xlabel("singular direction (rank)")
    ax_sv.set_ylabel("share of squared norm")
    ax_sv.legend(frameon=False, fontsize=7)
    ax_sv.set_title(f"top direction: encoder {float(cluster.enc_spectrum[0]):.2f}, "
                    f"decoder {float(cluster.dec_spectrum[0]):.2f}\n"
                    f"(write-up: decoder 'very little')")


def plot_ultra_low_cluster(
    cluster: UltraLowCluster, seed_mean_cosine: float | None, dead_cos: Tensor | None = None,
) -> plt.Figure:
    """The ultra-low cluster: cosines with the mean (encoder vs decoder), projections onto
    the mean direction, and singular spectra (encoder vs decoder vs Gaussian rows).

    `dead_cos`: cosines of the never-fired features' encoder vectors with the ultra-low mean
    direction, drawn as an outline in the first panel when given (a stand-in SAE has many)."""
    apply_style()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), layout="constrained")
    seed = ("" if seed_mean_cosine is None or math.isnan(seed_mean_cosine)
            else f"; cosine between two seeds' mean directions {seed_mean_cosine:.2f} "
                 f"(write-up 0.96)")
    fig.suptitle(f"Ultra-low frequency cluster: {cluster.n} features{seed}", fontsize=10)
    if cluster.n < 2:
        for ax in axes:
            _empty(ax, "fewer than 2 ultra-low features")
        return fig
    _cluster_panels(axes, cluster)
    if dead_cos is not None and dead_cos.numel():
        ax = axes[0]
        lo = min(float(cluster.enc_cos_with_mean.min()), float(cluster.dec_cos_with_mean.min()),
                 float(dead_cos.min()))
        bins = np.linspace(min(0.0, math.floor(lo * 10) / 10), 1, 81)
        ax.hist(_np(dead_cos), bins=bins, histtype="step", color=DEAD_C, linewidth=1.3,
                label=f"never-fired encoders\n(vs ultra-low mean, n={dead_cos.numel()})")
        ax.legend(loc="upper left", frameon=False, fontsize=7)
        ax.set_ylabel("features")
    return fig


def plot_orthogonal_retrain(
    original_freq: FrequencySummary, original_cluster: UltraLowCluster, orth: OrthogonalRetrain
) -> plt.Figure:
    """The SAE retrained orthogonal to the ultra-low direction: its frequency histogram
    against the original's, and whether its own ultra-low features share a (new) direction."""
    apply_style()
    fig, (ax_f, ax_c) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained",
                                     gridspec_kw={"width_ratios": [1.5, 1]})
    _frequency_axes(ax_f, original_freq, False,
                    f"original (ultra-low {_pct(original_freq.ultra_low_fraction)})", NORMAL_C,
                    dead_offset=-0.08)
    _frequency_axes(ax_f, orth.frequencies, False,
                    f"orthogonal retrain (ultra-low {_pct(orth.frequencies.ultra_low_fraction)})",
                    ULTRA_C, dead_offset=0.08)
    ax_f.legend(loc="upper center", frameon=True, framealpha=0.9)
    ax_f.set_title("firing frequencies (dashed: ultra-low threshold)")
    clusters = [(cl, name, colour) for cl, name, colour in (
        (original_cluster, "original cluster", NORMAL_C),
        (orth.cluster, "retrain's cluster", ULTRA_C)) if cl.n >= 2]
    if clusters:
        lo = min(float(cl.enc_cos_with_mean.min()) for cl, _, _ in clusters)
        bins = np.linspace(min(0.0, math.floor(lo * 10) / 10), 1, 81)
        for cl, name, colour in clusters:
            ax_c.hist(_np(cl.enc_cos_with_mean), bins=bins, histtype="step", linewidth=1.4,
                      color=colour, label=f"{name} (n={cl.n}, "
                                          f"{_pct(cl.cos_gt_share)} > {cl.cos_threshold:g})")
        ax_c.axvline(orth.cluster.cos_threshold, color="black", linestyle="--", linewidth=1)
        ax_c.set_yscale("log")
        ax_c.set_ylim(0.7, ax_c.get_ylim()[1] * 4)  # head-room for the legend
        ax_c.set_xlabel("encoder cosine with own cluster mean")
        ax_c.set_ylabel("ultra-low features")
        ax_c.legend(loc="upper left", frameon=False, fontsize=7)
    else:
        _empty(ax_c, "fewer than 2 ultra-low features")
    ax_c.set_title(f"cos(old mean, new mean) = {orth.old_vs_new_mean_cosine:.2f}\n"
                   f"(write-up: a new cluster in a different direction)")
    fig.suptitle("SAE trained orthogonal to the ultra-low direction", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------
# 3. Neuron sparsity and kurtosis.


def plot_neuron_sparsity(sparsity: NeuronSparsity) -> plt.Figure:
    """Scatter of fve_top_1 vs fve_next_9 per decoder row, coloured by class, with the
    write-up's class boundaries."""
    apply_style()
    s = sparsity.settings
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    x, y, cls = _np(sparsity.fve_top_1), _np(sparsity.fve_next_9), sparsity.classes.numpy()
    size = 4 if len(x) > 2000 else 8
    refs = {DENSE: "dense_share", ONE_SPARSE: "one_sparse_share", TEN_SPARSE: "ten_sparse_share"}
    for c in (DENSE, ONE_SPARSE, TEN_SPARSE):
        m = cls == c
        ax.scatter(x[m], y[m], s=size, alpha=0.5, linewidths=0, color=CLASS_COLOURS[c],
                   label=f"{CLASS_NAMES[c]} {_pct(sparsity.share(c))} "
                         f"(write-up {100 * PUBLISHED[refs[c]]:.1f}%)", rasterized=len(x) > 5000)
    d = s.dense_max_fve_top_10
    ax.plot([0, d], [d, 0], color="black", linestyle="--", linewidth=1,
            label=f"dense below: top-10 < {d:g}")
    x1, y1 = s.one_sparse_min_fve_top_1, s.one_sparse_max_fve_next_9
    ax.plot([x1, x1, 1.01], [-0.01, y1, y1], color="black", linestyle=":", linewidth=1.2,
            label=f"1-sparse box: top-1 > {x1:g}, next-9 < {y1:g}")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("fve_top_1: share of |decoder row|² in its top neuron")
    ax.set_ylabel("fve_next_9: share in the next 9 neurons")
    ax.legend(loc="upper right", frameon=True, framealpha=0.9, markerscale=2)
    ax.set_title(f"Neuron-basis sparsity of {len(x)} non-ultra-low decoder rows")
    return fig


def plot_kurtosis(kurtosis: KurtosisComparison, clip_quantile: float) -> plt.Figure:
    """Neuron kurtosis of decoder rows vs Gaussian rows: linear histogram clipped at the
    `clip_quantile` quantile of the real values (the write-up clipped its tail), and the
    whole range on a log axis of plain kurtosis (excess + 3, at least 1)."""
    apply_style()
    real, gauss = _np(kurtosis.real), _np(kurtosis.gaussian)
    fig, (ax_l, ax_r) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    clip = max(float(np.quantile(real, clip_quantile)), float(gauss.max()) + 1e-9)
    lo = min(float(gauss.min()), float(real.min()))
    bins = np.linspace(lo, clip, 61)
    series = ((gauss, "Gaussian baseline", GAUSS_C), (real, "decoder rows", REAL_C))
    for vals, name, colour in series:
        ax_l.hist(np.clip(vals, lo, clip), bins=bins, color=colour, alpha=0.6, label=name)
    n_over = int((real > clip).sum())
    note = (f"{n_over} rows ({100 * n_over / len(real):.1f}%) above {clip:.3g}\n"
            f"piled into the last bin\n(max {real.max():.3g}; write-up's tail to "
            f"~{PUBLISHED['kurtosis_clip']:.0f})"
            if n_over else f"nothing clipped (max {real.max():.3g})")
    ax_l.text(0.98, 0.62, note, transform=ax_l.transAxes, ha="right", va="top", fontsize=7)
    ax_l.set_xlabel("excess kurtosis over neurons" + (" (clipped)" if n_over else ""))
    ax_l.set_ylabel("features")
    ax_l.legend(frameon=False)
    ax_l.set_title(f"median: decoder {np.median(real):.1f}, Gaussian {np.median(gauss):.2f}")
    lbins = np.logspace(0, math.log10(max(real.max(), gauss.max()) + 3) + 0.05, 61)
    for vals, name, colour in series:
        ax_r.hist(vals + 3, bins=lbins, color=colour, alpha=0.6, label=name)
    ax_r.axvline(3, color="black", linestyle="--", linewidth=1)
    ax_r.set_xscale("log")
    _plain_log_ticks(ax_r.xaxis, float(lbins[-1]))
    ax_r.set_xlabel("kurtosis (excess + 3; Gaussian = 3, dashed), log scale")
    ax_r.set_ylabel("features")
    ax_r.set_title("full range, unclipped")
    fig.suptitle("Neuron kurtosis of non-ultra-low decoder rows (write-up: real >> Gaussian ~0;"
                 " the neuron basis is privileged)", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------
# 4. Encoder vs decoder; null space of W_out.


def plot_enc_dec_cosine(cosine: Tensor) -> plt.Figure:
    """Histogram of each non-ultra-low feature's encoder-decoder cosine, median marked."""
    apply_style()
    c = _np(cosine)
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.hist(c, bins=np.linspace(min(-0.2, float(c.min())), 1, 61), color=NORMAL_C)
    med = float(np.median(c))
    ax.axvline(med, color="black", linestyle="--", linewidth=1, label=f"median {med:.2f}")
    ax.axvline(PUBLISHED["median_enc_dec_cosine"], color=ULTRA_C, linestyle=":", linewidth=1.4,
               label="write-up median 0.5")
    ax.legend(loc="upper left", frameon=False)
    ax.set_xlabel("cosine(encoder vector, decoder row)")
    ax.set_ylabel("features")
    ax.set_title(f"Encoder vs decoder, {len(c)} non-ultra-low features: "
                 f"median {med:.2f} (write-up: 0.5)")
    return fig


def plot_nullspace(ns: NullspaceComparison) -> plt.Figure:
    """Share of each encoder / decoder vector's squared norm in W_out's null space, against
    random directions (share of vectors per bin, log scale so the narrow baseline fits)."""
    apply_style()
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    rand = _np(ns.random)
    values = np.concatenate([rand, _np(ns.enc), _np(ns.dec)])
    lo = max(0.0, float(values.min()) - 0.03)
    hi = min(1.0, float(values.max()) + 0.03)
    bins = np.linspace(lo, hi, 61)
    ax.hist(rand, bins=bins, weights=np.full(len(rand), 1 / len(rand)), color=DEAD_C, alpha=0.6,
            label=f"random directions: {rand.mean():.3f} ± {rand.std():.3f}")
    for vals, name, colour in ((ns.enc, "encoder vectors", NORMAL_C),
                               (ns.dec, "decoder rows", ULTRA_C)):
        v = _np(vals)
        ax.hist(v, bins=bins, weights=np.full(len(v), 1 / len(v)), histtype="step",
                linewidth=1.5, color=colour, label=f"{name}: {v.mean():.3f} ± {v.std():.3f}")
    exp = ns.expected_random_mean
    ax.axvline(exp, color="black", linestyle="--", linewidth=1)
    ax.set_xlim(lo, hi)
    ax.set_yscale("log")
    ax.set_xlabel(f"share of squared norm in the null space of W_out "
                  f"({ns.d_mlp - ns.rank} of {ns.d_mlp} dims)")
    ax.set_ylabel("share of vectors per bin")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="mean ± std")
    ax.set_title(f"Null space of W_out: random directions {exp:.3f} ± "
                 f"{ns.expected_random_std:.3f} (exact, dashed)\n"
                 f"write-up (gelu-1l, 1536 of 2048 dims): random 0.75 ± 0.013; SAE weights "
                 f"heavier-tailed", fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------
# 5. Case studies: tokens as coloured boxes.


def escape_token(text: str, max_chars: int) -> str:
    """A token made visible: space ·, newline ↵, tab ⇥, other control characters \\xNN;
    longer than max_chars gets an ellipsis."""
    out = []
    for ch in text:
        if ch == " ":
            out.append("·")
        elif ch == "\n":
            out.append("↵")
        elif ch == "\t":
            out.append("⇥")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    s = "".join(out) or "∅"
    return s if len(s) <= max_chars else s[: max_chars - 1] + "…"


def _width(tokens: Sequence[str | None], gap: float) -> float:
    return sum(len(t) + gap for t in tokens if t is not None)


def plot_case_studies(
    cases: Sequence[CaseStudy], decode: DecodeFn, max_token_chars: int, fontsize: float,
) -> plt.Figure:
    """Each feature: a header, its top-activating contexts (tokens coloured by activation,
    relative to the feature's largest; max token outlined; rows aligned on it) and, beside
    them, the tokens whose logits its decoder row raises and lowers most (direct effect, see
    LOGIT_NOTE).

    Laid out on a character grid in a monospace font, so boxes fit their text exactly.
    """
    apply_style()
    cmap = plt.get_cmap("Oranges")
    gap = 0.6  # characters between token boxes
    label_w = 8  # "act 12.3" column
    logit_w = max_token_chars + 8
    rows: list[tuple[str, object]] = []  # (kind, payload) per text line
    # Rows are aligned on the max-activating token: widths before and after it.
    before_w, after_w = 0.0, 0.0
    for case in cases:
        toks = [[escape_token(decode(int(t)), max_token_chars) if t >= 0 else None
                 for t in row] for row in case.context_tokens.tolist()]
        for row in toks:
            before_w = max(before_w, _width(row[: case.centre], gap))
            after_w = max(after_w, _width(row[case.centre:], gap))
        n_lines = max(case.context_tokens.shape[0], case.top_token_ids.numel())
        rows.append(("header", case))
        for i in range(n_lines):
            rows.append(("line", (case, toks, i)))
        rows.append(("gap", None))
    ctx_w = before_w + after_w
    total_w = label_w + 1 + ctx_w + 2 + 2 * logit_w + 1
    line_h = 1.55  # in units of the font size
    char_in = MONO_ADVANCE * fontsize / 72
    fig_w = total_w * char_in
    fig_h = len(rows) * line_h * fontsize / 72 + 0.6
    fig = plt.figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((0, 0, 1, 1 - 0.45 / fig_h))
    ax.set_axis_off()
    ax.set_xlim(0, total_w)
    ax.set_ylim(len(rows), 0)
    txt = dict(fontsize=fontsize, family=MONO, va="center", parse_math=False)
    x_logit = label_w + 1 + ctx_w + 2
    for y, (kind, payload) in enumerate(rows):
        yc = y + 0.5
        if kind == "header":
            case = payload
            ax.text(0, yc, f"Feature {case.feature}  (freq {case.frequency:.2e}; {case.label})",
                    fontsize=fontsize + 1, weight="bold", va="center", parse_math=False)
            ax.text(x_logit, yc, "raises logit of", color=PALETTE[2], **txt)
            ax.text(x_logit + logit_w, yc, "lowers logit of", color=PALETTE[5], **txt)
            ax.plot([0, total_w], [y + 0.05, y + 0.05], color="#cccccc", linewidth=0.6)
        elif kind == "line":
            case, toks, i = payload
            if i < len(toks) and math.isfinite(float(case.max_acts[i])):
                # The top activation, not the window's max: an excluded BOS may exceed it.
                finite = case.max_acts[torch.isfinite(case.max_acts)]
                peak = max(float(finite.max()), 1e-12)
                ax.text(label_w, yc, f"{float(case.max_acts[i]):.2f}", ha="right", **txt)
                x = label_w + 1 + before_w - _width(toks[i][: case.centre], gap)
                for j, tok in enumerate(toks[i]):
                    if tok is None:
                        continue
                    a = min(float(case.context_acts[i, j]) / peak, 1.0)
                    centre = j == case.centre
                    ax.add_patch(Rectangle(
                        (x, y + 0.12), len(tok) + gap * 0.5, 0.76,
                        facecolor=cmap(0.75 * a) if a > 0 else "white",
                        edgecolor="black" if centre else "#dddddd",
                        linewidth=1.0 if centre else 0.4))
                    ax.text(x + gap * 0.25, yc, tok, **txt)
                    x += len(tok) + gap
            k = i
            if k < case.top_token_ids.numel():
                for col, ids, vals in ((0, case.top_token_ids, case.top_token_effects),
                                       (1, case.bottom_token_ids, case.bottom_token_effects)):
                    tok = escape_token(decode(int(ids[k])), max_token_chars)
                    ax.text(x_logit + col * logit_w, yc, f"{tok:<{max_token_chars}} "
                            f"{float(vals[k]):+.2f}", **txt)
    fig.text(0.005, 1 - 0.1 / fig_h, "Top-activating contexts (one per sequence; number = max "
             "activation; colour = activation / feature's max shown; outlined = max token; "
             "· space, ↵ newline)", fontsize=fontsize, va="top", parse_math=False)
    fig.text(0.005, 1 - 0.27 / fig_h, f"Logit columns: {LOGIT_NOTE}", fontsize=fontsize - 1,
             va="top", color="#444444", parse_math=False)
    return fig


# ---------------------------------------------------------------------------------------------
# 6. Training: the stand-in LM's loss (paper: the pretrained model's loss by position) and the
# SAE runs' curves.

RUN_COLOURS = {"main": PALETTE[0], "seed2": PALETTE[2], "orthogonal": PALETTE[1]}
RUN_LABELS = {"main": "SAE", "seed2": "second seed", "orthogonal": "orthogonal retrain"}


def _series(history: Sequence[dict], key: str, tokens_per_step: int) -> tuple[np.ndarray, ...]:
    # A history row at step s was logged after s + 1 optimiser steps.
    rows = [r for r in history if key in r and r[key] is not None]
    return (np.array([(r["step"] + 1) * tokens_per_step for r in rows], dtype=float),
            np.array([r[key] for r in rows], dtype=float))


def plot_sae_training(
    runs: dict[str, dict], ultra_low_threshold: float, n_eval_tokens: int, hist_bin: float,
    log_freq_min: float, resample_steps: Sequence[int],
) -> plt.Figure:
    """SAE training curves: L0 of training batches, loss recovered (and the mean-ablation
    baseline), the share of features below the ultra-low threshold (never fired included) and
    of never-fired ones at each evaluation, and the first SAE's log10-frequency distribution
    over training (the write-up's drift of the ultra-low mode).

    `runs`: name -> {"history": [...], "tokens_per_step": int}. `resample_steps`: optimiser
    steps after which resampling was due (grey lines).
    """
    apply_style()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), layout="constrained")
    ax_l0, ax_rec, ax_frac, ax_heat = axes.flat
    mean_abl = math.nan
    for name, run in runs.items():
        hist, tps = run["history"], run["tokens_per_step"]
        colour, label = RUN_COLOURS.get(name, "black"), RUN_LABELS.get(name, name)
        x, y = _series(hist, "l0", tps)
        ax_l0.plot(x, y, color=colour, label=label, linewidth=1.2)
        x, y = _series(hist, "eval/loss_recovered", tps)
        ax_rec.plot(x, y, color=colour, marker="o", markersize=3, label=label)
        x, dead = _series(hist, "eval/dead_frac", tps)
        _, ultra = _series(hist, "eval/ultra_low_frac", tps)
        ax_frac.plot(x, dead + ultra, color=colour, marker="o", markersize=3)
        ax_frac.plot(x, dead, color=colour, marker="s", markersize=3, linestyle="--")
        if name == "main":
            _, ym = _series(hist, "eval/mean_abl_score", tps)
            mean_abl = float(ym[-1]) if len(ym) else math.nan
    tps_main = next(iter(runs.values()))["tokens_per_step"] if runs else 1
    resample_tokens = [float(s * tps_main) for s in resample_steps]
    for ax in (ax_l0, ax_rec, ax_frac):
        for t in resample_tokens:
            ax.axvline(t, color="#bbbbbb", linewidth=0.8, zorder=0)
        ax.set_xlabel("SAE training tokens")
    ax_l0.set_yscale("log")
    ax_l0.set_ylabel("L0 (active features per token)")
    ax_l0.set_title("L0 of training batches" + (" (grey: resampling)" if resample_tokens else ""))
    ax_l0.legend(frameon=False)
    ax_rec.set_ylabel("loss recovered (vs zero ablation)")
    ax_rec.set_title("loss recovered, SAE spliced in (write-up: 92%; mean ablation 25%)",
                     fontsize=9)
    ax_rec.set_ylim(0, 1.02)
    if math.isfinite(mean_abl) and mean_abl >= 0:
        ax_rec.axhline(mean_abl, color="black", linestyle=":", linewidth=1,
                       label=f"mean ablation ({mean_abl:.2f})")
    elif math.isfinite(mean_abl):
        ax_rec.text(0.98, 0.04, f"mean ablation: {mean_abl:.2f}\n(worse than zero ablation)",
                    transform=ax_rec.transAxes, ha="right", va="bottom", fontsize=7)
    ax_rec.legend(frameon=False, fontsize=7, loc="center right")
    ax_frac.set_ylabel("share of features")
    ax_frac.set_ylim(-0.02, 1.02)
    ax_frac.set_title(f"features below {ultra_low_threshold:g} and never fired, "
                      f"over {n_eval_tokens:,} tokens", fontsize=9)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=RUN_COLOURS.get(n, "black"), label=RUN_LABELS.get(n, n))
               for n in runs]
    handles += [Line2D([], [], color="#555555", marker="o", markersize=3,
                       label=f"< {ultra_low_threshold:g}, never fired included"),
                Line2D([], [], color="#555555", marker="s", markersize=3, linestyle="--",
                       label="never fired")]
    ax_frac.legend(handles=handles, frameon=True, framealpha=0.9, fontsize=6.5, ncol=2,
                   loc="upper center")
    main = runs.get("main")
    if main is not None:
        rows = [r for r in main["history"] if "freq_hist/000" in r]
    else:
        rows = []
    if rows:
        keys = sorted(k for k in rows[0] if k.startswith("freq_hist/"))
        counts = np.array([[r[k] for k in keys] for r in rows])  # [evals, bins]
        x = np.array([(r["step"] + 1) * main["tokens_per_step"] for r in rows], dtype=float)
        # Bin 0 is 'never fired in this evaluation' (or below 10^log_freq_min): drawn below.
        floor = math.log10(1.0 / n_eval_tokens)
        edges_y = np.concatenate([[log_freq_min - hist_bin],
                                  log_freq_min + hist_bin * np.arange(len(keys))])
        x_edges = np.concatenate([[0.0], (x[:-1] + x[1:]) / 2, [x[-1]]])
        mesh = ax_heat.pcolormesh(x_edges, edges_y, np.log10(counts.T + 1), cmap="viridis",
                                  shading="flat")
        fig.colorbar(mesh, ax=ax_heat, label="log10(features + 1)")
        ax_heat.axhline(math.log10(ultra_low_threshold), color="white", linestyle="--",
                        linewidth=1)
        ax_heat.axhline(floor, color="white", linestyle=":", linewidth=1)
        ax_heat.set_ylim(log_freq_min - hist_bin, 0)
        yt = list(range(int(math.ceil(log_freq_min)), 1))
        ax_heat.set_yticks([log_freq_min - hist_bin / 2] + yt,
                           ["never"] + [str(t) for t in yt])
        ax_heat.set_xlabel("SAE training tokens")
        ax_heat.set_ylabel("log10 firing frequency")
        ax_heat.set_title(f"first SAE: frequency distribution over training\n(dashed: "
                          f"ultra-low threshold; dotted: one firing in {n_eval_tokens:,})",
                          fontsize=9)
        ax_heat.grid(False)
    else:
        _empty(ax_heat, "no evaluations recorded")
    fig.suptitle("SAE training", fontsize=10)
    return fig


def plot_lm_reference(losses_by_position: Tensor, name: str, mean_loss: float) -> plt.Figure:
    """Paper profile: the pretrained model is not trained here; its next-token loss on the
    held-out rows, by position, stands in for the training curve."""
    apply_style()
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    y = _np(losses_by_position)
    ax.plot(np.arange(1, len(y) + 1), y, color=PALETTE[0])
    ax.axhline(mean_loss, color="black", linestyle="--", linewidth=1,
               label=f"mean {mean_loss:.3f}")
    ax.set_xlabel("position (predicting the next token)")
    ax.set_ylabel("next-token loss (nats)")
    ax.set_title(f"{name} (pretrained): loss on the held-out rows")
    ax.legend(frameon=False)
    return fig
