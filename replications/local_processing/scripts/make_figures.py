"""Figures of the local-processing replication from the harvest and its analysis.

    python -m replications.local_processing.scripts.make_figures --profile P --harvest DIR
        --analysis JSON --figure-dir DIR

Writes every figure of the manifest (writeup.yaml) as PNG + PDF into --figure-dir.
"""

from __future__ import annotations

from replications.local_processing import plots
from replications.local_processing.analysis import Harvest
from replications.local_processing.config import WRITEUP
from replications.local_processing.scripts._common import setup
from shared.cli import add_paths, parse_and_setup, run, script_parser, user_errors
from shared.config import config_hash
from shared.figures import Provenance, save_writeup_figures
from shared.io import read_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(script_parser(__doc__.splitlines()[0]), "harvest", "analysis", "figure_dir")
    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        h = Harvest.load(args.harvest)
        summary = read_json(args.analysis)
    prov = Provenance.make(WRITEUP, args.profile, config_hash(cfg))
    save_writeup_figures(WRITEUP, plots.all_figures(h, summary, cfg), args.figure_dir, prov)


if __name__ == "__main__":
    run(main)
