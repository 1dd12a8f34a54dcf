"""SAE-on-TMS figures and claim metrics.

Figure 1: MMCS heatmap over SAE width (multiple of F) x L1 coefficient.
Figure 2: MMCS against width multiple, one line per L1, the true feature count dashed at 1.0,
the knee and smooth fits of the cliff test.
Figure 3: MMCS against the TMS's F/H ratio, without and with resampling (best L1, seed mean).
Every figure shows the MMCS of random unit dictionaries of the same width.
"""

from __future__ import annotations

from replications.toy_models import plots_sae_tms as plots
from replications.toy_models.sae_tms_metrics import resampling_metrics, sweep_metrics
from replications.toy_models.scripts._common import load_config, parser, provenance, write_metrics
from shared.cli import add_paths, run
from shared.figures import apply_style, save_figure
from shared.io import read_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0], training=False),
                  sweep="sae_tms_sweep results (.json)",
                  resampling="sae_tms_resampling results (.json)", metrics="metrics (.json)",
                  figure_heatmap=".png (a .pdf beside it)", figure_width=".png (+ .pdf)",
                  figure_resampling=".png (+ .pdf)")
    args = p.parse_args(argv)
    cfg = load_config(args.profile)
    sweep, study = read_json(args.sweep), read_json(args.resampling)
    apply_style()
    prov = provenance(args.profile, cfg.sae_tms)
    save_figure(plots.heatmap_figure(sweep), args.figure_heatmap, prov)
    save_figure(plots.width_figure(sweep), args.figure_width, prov)
    save_figure(plots.resampling_figure(study), args.figure_resampling, prov)
    metrics = {**sweep_metrics(sweep), **resampling_metrics(study)}
    write_metrics(args.metrics, metrics, "sae_tms_figures")


if __name__ == "__main__":
    run(main)
