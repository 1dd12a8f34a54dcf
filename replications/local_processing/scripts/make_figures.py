"""Figures of the local-processing replication from the harvest and its analysis.

    python -m replications.local_processing.scripts.make_figures --profile P --harvest DIR
        --analysis JSON --figure-dir DIR

Writes every figure of the manifest (writeup.yaml) as PNG + PDF into --figure-dir.
"""

from __future__ import annotations

import sys
from pathlib import Path

from replications.local_processing import plots
from replications.local_processing.analysis import Harvest
from replications.local_processing.config import WRITEUP
from replications.local_processing.scripts._common import setup
from shared.cli import run, script_parser, user_errors
from shared.config import config_hash
from shared.figures import Provenance, save_writeup_figures
from shared.io import read_json


def main(argv: list[str] | None = None) -> None:
    p = script_parser(__doc__.splitlines()[0])
    p.add_argument("--harvest", type=Path, required=True)
    p.add_argument("--analysis", type=Path, required=True)
    p.add_argument("--figure-dir", type=Path, required=True)
    args = p.parse_args(argv)
    cfg = setup(args.profile, args.threads)
    with user_errors():
        h = Harvest.load(args.harvest)
        summary = read_json(args.analysis)
    prov = Provenance.make(WRITEUP, args.profile, config_hash(cfg))
    figures = plots.all_figures(h, summary, cfg)
    save_writeup_figures(WRITEUP, figures, args.figure_dir, prov)
    print(f"[figures] {len(figures)} figures -> {args.figure_dir}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
