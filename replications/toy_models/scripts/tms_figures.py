"""TMS figures and metrics: 5/2 geometry across sparsity, and feature dimensionality.

Figure 1 (geometry): one column per feature probability; W^T W on top, the feature directions
in the 2-D hidden space (when n_hidden is 2), and ||W_i|| bars coloured by superposition.
Figure 2 (dimensionality): D_i of every feature against 1/(1-S) with dimensions per feature
as a line and the sticky fractions 1, 3/4, 2/3, 1/2, 2/5, 1/3 dashed.
"""

from __future__ import annotations

from typing import Any

from replications.toy_models import plots
from replications.toy_models.scripts._common import load_config, parser, provenance, write_metrics
from replications.toy_models.tms import (
    dimensionality_metrics,
    geometry_metrics,
)
from shared.cli import add_paths, run
from shared.figures import apply_style, save_figure
from shared.io import load_tensors


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0], training=False),
                  weights="tms_train output", metrics="metrics (.json)",
                  figure_geometry=".png (a .pdf beside it)", figure_dimensionality=".png (+ .pdf)")
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
    write_metrics(args.metrics, metrics, "tms_figures")


if __name__ == "__main__":
    run(main)
