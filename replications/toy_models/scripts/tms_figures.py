"""TMS figures and metrics: 5/2 geometry across sparsity, and feature dimensionality.

Figure 1 (geometry): one column per feature probability; W^T W on top, the feature directions
in the 2-D hidden space (when n_hidden is 2), and ||W_i|| bars coloured by superposition.
Figure 2 (dimensionality): D_i of every feature against 1/(1-S) with dimensions per feature
as a line and the sticky fractions 1, 3/4, 2/3, 1/2, 2/5, 1/3 dashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from replications.toy_models import plots
from replications.toy_models.scripts._common import load_config, parser, provenance
from replications.toy_models.tms import (
    dimensionality_metrics,
    geometry_metrics,
)
from shared.cli import run
from shared.figures import apply_style, save_figure
from shared.io import load_tensors, write_json


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0], training=False)
    p.add_argument("--weights", type=Path, required=True, help="tms_train output")
    p.add_argument("--metrics", type=Path, required=True, help="metrics (.json)")
    p.add_argument("--figure-geometry", type=Path, required=True, help=".png (a .pdf beside it)")
    p.add_argument("--figure-dimensionality", type=Path, required=True, help=".png (+ .pdf)")
    args = p.parse_args(argv)
    cfg = load_config(args.profile)
    t = load_tensors(args.weights)
    apply_style()
    prov = provenance(args.profile, cfg.tms)
    thr = cfg.tms.represented_threshold
    Wg, pg = t["geometry.W"], t["geometry.probability"]
    Wd, pd = t["dimensionality.W"], t["dimensionality.probability"]
    save_figure(plots.geometry_figure(Wg, pg, t["geometry.importance"], thr), args.figure_geometry,
                prov)
    save_figure(plots.dimensionality_figure(Wd, pd), args.figure_dimensionality, prov)
    metrics: dict[str, Any] = {**geometry_metrics(Wg, pg, thr),
                               **dimensionality_metrics(Wd, pd, thr)}
    write_json(args.metrics, metrics)
    for k, v in metrics.items():
        print(f"[tms_figures] {k} = {v:.4g}")


if __name__ == "__main__":
    run(main)
