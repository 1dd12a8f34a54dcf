"""Figures of the Caesar-cipher replication, from the analysis summary and its tensors.

Each function returns a matplotlib Figure in the shared style; `all_figures` makes every figure
of the manifest (writeup.yaml). Tensors are keyed `<mode>.<name>` (scripts/analyse.py).
"""

from __future__ import annotations

from typing import Any, Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import PowerNorm

from replications.caesar_cipher.analysis import COMPONENTS, PER_WORD
from replications.caesar_cipher.data import LETTERS
from shared.figures import PALETTE, apply_style

MODE_C = {"easy": PALETTE[0], "medium": PALETTE[2], "hard": PALETTE[1]}
HEAD_C = (PALETTE[3], PALETTE[4])
CHANCE_C = "#777777"

Tensors = dict[str, torch.Tensor]


def _modes(summary: dict, circuits: bool = False) -> list[str]:
    """The analysed modes (with `circuits`: those with the word-level analyses)."""
    return [m for m, s in summary["modes"].items() if not circuits or "ov" in s]


def _mode_rows(summary: dict, ncols: int, width: float,
               row_height: float) -> tuple[plt.Figure, np.ndarray, list[str]]:
    """A figure in the shared style with a row of `ncols` axes for each mode with the word-level
    analyses: the figure, its axes [row, column] and the modes."""
    modes = _modes(summary, circuits=True)
    apply_style()
    fig, axes = plt.subplots(len(modes), ncols, figsize=(width, row_height * len(modes)),
                             squeeze=False)
    return fig, axes, modes


def _pos_labels(n: int) -> list[str]:
    return [f"{p // PER_WORD}{'ABC_'[p % PER_WORD]}" for p in range(n)]


def accuracy_by_position(summary: dict, t: Tensors) -> plt.Figure:
    apply_style()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.6, 3.4), sharey=True)
    for mode in _modes(summary):
        acc = t[f"{mode}.accuracy_by_position"].numpy()
        prob = t[f"{mode}.prob_by_position"].numpy()
        x = np.arange(len(acc))
        ax.plot(x, acc, marker="o", ms=3, color=MODE_C[mode], label=mode)
        bx.plot(x, prob, marker="o", ms=3, color=MODE_C[mode],
                label=f"{mode} (mean {summary['modes'][mode]['accuracy']['mean_prob_correct']:.3f})")
    for a in (ax, bx):
        a.axhline(1 / 26, color=CHANCE_C, linestyle=":", label="chance 1/26")
        a.set_xlabel("sequence position")
        a.set_ylim(0, 1.02)
        a.legend(loc="center right")
    ax.set_ylabel("accuracy (argmax = rotation)")
    bx.set_ylabel("mean probability on the correct rotation")
    ax.set_title("Accuracy by position")
    bx.set_title("Probability of the correct rotation (post: easy 0.946, medium 0.910)")
    return fig


def position0(summary: dict, t: Tensors) -> plt.Figure:
    fig, axes, modes = _mode_rows(summary, 2, 9.6, 4.2)
    for row, mode in zip(axes, modes):
        s = summary["modes"][mode]["position0"]
        im = row[0].imshow(t[f"{mode}.pos0_probs"].numpy(), aspect="equal", cmap="viridis")
        row[0].set_xticks(range(26))
        row[0].set_xticklabels(range(26), fontsize=5)
        row[0].set_yticks(range(26))
        row[0].set_yticklabels(list(LETTERS), fontsize=6)
        row[0].set_xlabel("predicted rotation")
        row[0].set_ylabel("first character (encrypted)")
        row[0].grid(False)
        row[0].set_title(f"{mode}: P(rotation | first character alone)")
        fig.colorbar(im, ax=row[0], fraction=0.046)
        freq = t[f"{mode}.first_letter_freq"].numpy()
        implied = t[f"{mode}.pos0_implied"].numpy()
        bx = row[1]
        hi = max(freq.max(), implied.max()) * 1.1
        bx.plot([0, hi], [0, hi], color=CHANCE_C, linestyle=":", label="y = x")
        bx.scatter(freq, implied, color=MODE_C[mode], s=14)
        for i, ch in enumerate(LETTERS):
            if freq[i] > 0.01 or implied[i] > 0.01:
                bx.annotate(ch, (freq[i], implied[i]), fontsize=8, xytext=(3, 2),
                            textcoords="offset points")
        bx.set_xlabel("frequency as first letter (word list)")
        bx.set_ylabel("model's implied probability (position 0)")
        post = " (post: t about 29%)" if mode == "easy" else ""
        bx.set_title(f"{mode}: '{s['top_letter']}' {s['top_letter_freq']:.1%} in the data, "
                     f"{s['top_letter_model']:.1%} by the model{post}; corr "
                     f"{s['corr_implied_vs_freq']:.2f}", fontsize=9)
        bx.legend(loc="upper left")
    fig.tight_layout()
    return fig


def attention_patterns(summary: dict, t: Tensors) -> plt.Figure:
    fig, axes, modes = _mode_rows(summary, 4, 12, 3.6)
    for row, mode in zip(axes, modes):
        pats = t[f"{mode}.mean_patterns"].numpy()  # [layer, head, q, k]
        n = pats.shape[-1]
        s = summary["modes"][mode]["attention"]
        for j, ax in enumerate(row):
            layer, head = divmod(j, 2)
            ax.imshow(pats[layer, head], cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=1))
            ax.grid(False)
            ticks = list(range(0, n, PER_WORD))
            ax.set_xticks(ticks)
            ax.set_xticklabels([_pos_labels(n)[i] for i in ticks], fontsize=6)
            ax.set_yticks(ticks)
            ax.set_yticklabels([_pos_labels(n)[i] for i in ticks], fontsize=6)
            for b in range(0, n + 1, PER_WORD):
                ax.axvline(b - 0.5, color="#cccccc", linewidth=0.4)
                ax.axhline(b - 0.5, color="#cccccc", linewidth=0.4)
            extra = (f"within word {s['layer0_within_word'][head]:.2f}" if layer == 0 else
                     f"1st word from last {s['layer1_first_word_from_last'][head]:.2f}")
            ax.set_title(f"{mode} head {layer}.{head}: {extra}", fontsize=8)
            ax.set_xlabel("key (source)")
            if j == 0:
                ax.set_ylabel("query (destination)")
    fig.suptitle(f"Mean attention patterns; uniform shares: within word "
                 f"{summary['modes'][modes[0]]['attention']['layer0_within_word_uniform']:.2f}, "
                 f"first word from the last position "
                 f"{summary['modes'][modes[0]]['attention']['layer1_first_word_uniform']:.3f}",
                 fontsize=10)
    fig.tight_layout()
    return fig


def layer1_ov(summary: dict, t: Tensors) -> plt.Figure:
    modes = _modes(summary, circuits=True)
    apply_style()
    fig, axes = plt.subplots(2 * len(modes), 1, figsize=(13, 2.0 * 2 * len(modes) + 0.6),
                             squeeze=False)
    for k, mode in enumerate(modes):
        by_word = t[f"{mode}.ov_by_word"].numpy()  # [head, word, pos]
        words = summary["modes"][mode]["words"]
        lim = np.abs(by_word).max()
        for h in range(by_word.shape[0]):
            ax = axes[2 * k + h, 0]
            im = ax.imshow(by_word[h].T, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim)
            ax.grid(False)
            ax.set_yticks(range(3))
            ax.set_yticklabels(["0A", "0B", "0C"])
            ax.set_xticks(range(len(words)))
            ax.set_xticklabels(words, rotation=90, fontsize=5)
            ax.set_title(f"{mode}, head 1.{h}: correct-rotation logit (centred) via the OV circuit, "
                         "words most frequent first", fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    fig.tight_layout()
    return fig


def layer1_preferences(summary: dict, t: Tensors) -> plt.Figure:
    fig, axes, modes = _mode_rows(summary, 2, 10, 3.4)
    for row, mode in zip(axes, modes):
        last = t[f"{mode}.layer1_from_last"].numpy()  # [head, k]
        n = last.shape[-1]
        x = np.arange(n)
        for h in range(last.shape[0]):
            row[0].plot(x, last[h], marker="o", ms=3, color=HEAD_C[h], label=f"head 1.{h}")
        row[0].axhline(1 / n, color=CHANCE_C, linestyle=":", label="uniform 1/32")
        row[0].set_xticks(range(0, n, PER_WORD))
        row[0].set_xticklabels(_pos_labels(n)[::PER_WORD])
        row[0].set_xlabel("key position")
        row[0].set_ylabel("attention from the last position")
        row[0].set_title(f"{mode}: layer-1 attention by key position")
        row[0].legend()
        by_word = t[f"{mode}.ov_by_word"].numpy()
        freq = t[f"{mode}.word_freq"].numpy()
        boost = by_word[..., 1:].max(axis=(0, 2))
        cw = summary["modes"][mode]["common_words"]
        ov = summary["modes"][mode]["ov"]
        row[1].scatter(freq, boost, s=12, color=MODE_C[mode])
        row[1].set_xscale("log")
        row[1].axhline(0, color=CHANCE_C, linestyle=":")
        row[1].set_xlabel("word frequency (word list)")
        row[1].set_ylabel("best layer-1 OV boost from 0B/0C")
        row[1].set_title(f"{mode}: rank corr. with frequency: OV boost "
                         f"{ov['rank_corr_boost_vs_frequency']:+.2f}, attention "
                         f"{cw['rank_corr_attention_vs_frequency']:+.2f}", fontsize=9)
    fig.tight_layout()
    return fig


def dla_by_head(summary: dict, t: Tensors) -> plt.Figure:
    fig, axes, modes = _mode_rows(summary, 2, 10, 3.2)
    for row, mode in zip(axes, modes):
        d = t[f"{mode}.dla_correct"].numpy()  # [comp, batch, pos]
        pos = summary["modes"][mode]["dla"]["position"]
        for ax, data, label in ((row[0], d[:, :, pos], f"position {pos}"),
                                (row[1], d.reshape(len(COMPONENTS), -1), "all positions")):
            parts = ax.violinplot([x for x in data], showmeans=True, showextrema=False)
            for body, c in zip(parts["bodies"], PALETTE):  # type: ignore[attr-defined]
                body.set_facecolor(c)
            ax.axhline(0, color=CHANCE_C, linestyle=":")
            ax.set_xticks(range(1, len(COMPONENTS) + 1))
            ax.set_xticklabels(COMPONENTS)
            ax.set_ylabel("DLA on the correct rotation")
            means = ", ".join(f"{c} {m:+.2f}" for c, m in zip(COMPONENTS, data.mean(1)))
            ax.set_title(f"{mode}, {label}\nmeans: {means}", fontsize=8)
            lo, hi = np.percentile(data, [1, 99])
            ax.set_ylim(lo - 0.5, hi + 0.5)
    fig.tight_layout()
    return fig


def head_compensation(summary: dict, t: Tensors) -> plt.Figure:
    modes = _modes(summary, circuits=True)
    apply_style()
    fig, axes = plt.subplots(1, len(modes), figsize=(4.4 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        best = t[f"{mode}.ov_head_best"].numpy()
        ov = summary["modes"][mode]["ov"]
        ax.scatter(best[0], best[1], s=12, color=MODE_C[mode])
        words = summary["modes"][mode]["words"]
        for i in range(min(8, len(words))):
            ax.annotate(words[i], (best[0, i], best[1, i]), fontsize=7, xytext=(2, 2),
                        textcoords="offset points")
        ax.axhline(0, color=CHANCE_C, linestyle=":")
        ax.axvline(0, color=CHANCE_C, linestyle=":")
        ax.set_xlabel(f"head 1.0 OV boost from 0{ov['best_position'][0]}")
        ax.set_ylabel(f"head 1.1 OV boost from 0{ov['best_position'][1]}")
        ax.set_title(f"{mode}: corr over words {ov['head_corr_over_words']:+.2f}\n"
                     f"(frequency removed {ov['head_corr_over_words_freq_removed']:+.2f})",
                     fontsize=9)
    fig.tight_layout()
    return fig


FIGURES: dict[str, Callable[[dict, Tensors], plt.Figure]] = {
    "accuracy_by_position": accuracy_by_position,
    "position0_direct_path": position0,
    "attention_patterns": attention_patterns,
    "layer1_ov_by_word": layer1_ov,
    "layer1_preferences": layer1_preferences,
    "dla_by_head": dla_by_head,
    "head_compensation": head_compensation,
}


def all_figures(summary: dict[str, Any], tensors: Tensors) -> dict[str, plt.Figure]:
    return {name: make(summary, tensors) for name, make in FIGURES.items()}
