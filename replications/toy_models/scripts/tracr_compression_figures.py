"""Figures and headline metrics of the Tracr compression sweeps.

Inputs: results JSONs written by tracr_compress (--results, one per program). Outputs: metrics
JSON (--metrics), accuracy-vs-width figure (--accuracy-figure) and normalised singular values
of the learned W per width (--sv-figure); each figure as PNG + PDF.
"""

from __future__ import annotations

from pathlib import Path

from replications.toy_models.scripts._common import WRITEUP, load_config, parser
from shared.cli import add_paths, run
from shared.config import config_hash
from shared.figures import Provenance, apply_style, save_figure
from shared.io import read_json, write_json


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0], training=False)
    p.add_argument("--results", type=Path, nargs="+", required=True)
    add_paths(p, "metrics", "accuracy_figure", "sv_figure")
    args = p.parse_args(argv)
    cfg = load_config(args.profile)
    from replications.toy_models.plots import plot_accuracy, plot_singular_values
    from replications.toy_models.tracr_compression import compression_metrics

    results = [read_json(path) for path in args.results]
    write_json(args.metrics, compression_metrics(results))
    apply_style()
    prov = Provenance.make(WRITEUP, args.profile, config_hash(cfg.compression))
    save_figure(plot_accuracy(results), args.accuracy_figure, prov)
    save_figure(plot_singular_values(results), args.sv_figure, prov)


if __name__ == "__main__":
    run(main)
