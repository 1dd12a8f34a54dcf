"""Summaries of the harvested cosines: per-layer quantiles, trend, tail, token categories.

    python -m replications.local_processing.scripts.analyse --profile P --harvest DIR --out JSON

Writes the analysis JSON that `local_metrics` puts under `analysis` in metrics.json.
"""

from __future__ import annotations

from replications.local_processing.analysis import Harvest, summarise
from replications.local_processing.scripts._common import setup
from shared.cli import add_paths, log, parse_and_setup, run, script_parser, user_errors
from shared.io import write_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(script_parser(__doc__.splitlines()[0]),
                  harvest="directory of the harvest rule", out=None)
    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        h = Harvest.load(args.harvest)
        summary = summarise(h, cfg.analysis, cfg.categories, cfg.figures.token_label_chars)
    write_json(args.out, summary)
    hl, tr = summary["headline"], summary["trend"]
    log(f"layer 0 median: context {hl['focus_context']} {hl['layer0_focus']:.3f}, "
        f"context {hl['contrast_context']} {hl['layer0_contrast']:.3f}; early drop "
        f"{tr['early_drop']:.3f}, final uptick {tr['final_uptick']:+.3f} -> {args.out}")


if __name__ == "__main__":
    run(main)
