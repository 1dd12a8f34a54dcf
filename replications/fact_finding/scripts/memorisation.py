"""Toy models of memorisation (post 4): train, probe, draw (rule ff_memorisation).

    python -m replications.fact_finding.scripts.memorisation --profile P --results R.json
        --metrics M.json --figure-training T.png --figure-probes P.png

Figure 1 (training): train and held-out accuracy over training for each task and depth.
Figure 2 (probes): probe accuracy by site (embedding, each block's neurons and residual,
logits) for the label and for the first input's identity, both depths, both tasks; for the
label, the model's own readout applied to each residual (the partial sum) as well.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt

from replications.fact_finding import toy_memorisation as M
from replications.fact_finding.scripts._common import parser, setup
from shared.cli import run
from shared.config import config_hash
from shared.figures import PALETTE, Provenance, apply_style, save_figure
from shared.io import write_json

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


def training_figure(results: dict) -> plt.Figure:
    tasks = list(results["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks) + 0.4, 3.0),
                             sharey=True, squeeze=False)
    for ax, t in zip(axes[0], tasks):
        for i, (key, m) in enumerate(results["tasks"][t].items()):
            colour = PALETTE[i]
            ax.plot(m["steps"], m["train_curve"], color=colour, lw=1.5,
                    label=f"{m['depth']}-layer, trained pairs")
            ax.plot(m["steps"], m["heldout_curve"], color=colour, lw=1.5, ls="--",
                    label=f"{m['depth']}-layer, held-out pairs")
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


def probes_figure(results: dict) -> plt.Figure:
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


def main() -> None:
    p = parser(__doc__.splitlines()[0], model=False)
    p.add_argument("--results", type=Path, required=True, help="curves and probes (.json)")
    p.add_argument("--metrics", type=Path, required=True, help="flat metrics (.json)")
    p.add_argument("--figure-training", type=Path, required=True, help=".png (+ .pdf)")
    p.add_argument("--figure-probes", type=Path, required=True, help=".png (+ .pdf)")
    args = p.parse_args()
    cfg = setup(args.profile, args.threads, seed=0)
    s = cfg.memorisation
    results = M.run(s)
    write_json(args.results, results)
    write_json(args.metrics, results["summary"])
    apply_style()
    prov = Provenance.make("fact_finding", args.profile, config_hash(s))
    save_figure(training_figure(results), args.figure_training, prov)
    save_figure(probes_figure(results), args.figure_probes, prov)
    for k, v in results["summary"].items():
        print(f"[memorisation] {k} = {v:.3f}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
