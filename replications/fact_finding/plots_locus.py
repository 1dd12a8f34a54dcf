"""Figure `sport_locus` (locus.py): where the sport is linearly decodable, layer by layer, at the
surname and at the final token, and what blocking attention from the final token does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from replications.fact_finding.circuit import CircuitSettings
from replications.fact_finding.locus import POSITIONS, Locus, knockout_jobs
from shared.figures import PALETTE, Provenance, apply_style, plt, save_figure

KNOCKOUT_LABELS = {
    "surname_all": "surname, all layers", "surname_early": "surname, layers ≤ {k}",
    "surname_late": "surname, layers > {k}", "first_all": "first name, all layers",
    "first_late": "first name, layers > {k}",
}


def plot_locus(loc: Locus, settings: CircuitSettings, n_answers: int, png: Path,
               prov: Provenance) -> None:
    """Left: probe accuracy per layer at the surname and the final token (mean +- std over
    splits) with the shuffled-label probes. Right: accuracy with attention knocked out."""
    apply_style()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.6, 3.6), constrained_layout=True,
                                 gridspec_kw={"width_ratios": [1.5, 1]})
    n_layers = loc.probe.shape[1] - 1
    xs = np.arange(n_layers + 1)
    names = {"surname": "surname token", "final": "final token ('of': the answer)"}
    for i, pos in enumerate(POSITIONS):
        m, s = loc.probe[i].mean(-1).numpy(), loc.probe[i].std(-1, unbiased=False).numpy()
        ax.errorbar(xs + 0.05 * i, m, yerr=s, marker="os"[i], ms=4, capsize=3,
                    color=PALETTE[2 * i], label=names[pos])
        sh = loc.shuffled[i].mean(-1).numpy()
        ax.plot(xs + 0.05 * i, sh, ls=":", marker="x", ms=4, color=PALETTE[2 * i], alpha=0.7,
                label=f"{names[pos].split(' (')[0]}, shuffled labels")
    ax.axvline(settings.locus_layer + 1, color="grey", lw=1, ls="--",
               label=f"after block {settings.locus_layer} (locus_layer)")
    ax.axhline(1 / n_answers, color="black", lw=1, ls=":", label="chance")
    ax.set_xticks(xs, ["embed", *map(str, range(n_layers))])
    ax.set_xlabel("residual after block")
    ax.set_ylabel("probe validation accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Sport probes at the surname vs the final token ({loc.probe.shape[-1]} splits)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    specs = list(knockout_jobs(n_layers, settings.locus_layer))
    vals = [loc.clean_accuracy, *[loc.knockout[k] for k in specs]]
    labels = ["clean", *[KNOCKOUT_LABELS[k].format(k=settings.locus_layer) for k in specs]]
    colours = [PALETTE[7 % len(PALETTE)]] + [PALETTE[2] if k.startswith("surname")
                                             else PALETTE[1] for k in specs]
    y = np.arange(len(vals))
    bx.barh(y, vals, color=colours)
    for yi, v in zip(y, vals):
        bx.text(v + 0.01, yi, f"{v:.2f}", va="center", fontsize=7)
    bx.axvline(1 / n_answers, color="black", lw=1, ls=":")
    bx.set_yticks(y, labels, fontsize=7)
    bx.invert_yaxis()
    bx.set_xlim(0, 1.1)
    bx.set_xlabel("accuracy among the answers")
    bx.set_title("Attention from the final token blocked to ...", fontsize=9)
    bx.grid(axis="y", visible=False)
    save_figure(fig, png, prov)
