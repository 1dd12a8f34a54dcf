"""Figures of the challenge-2 replication from the analysis, the hand-set model and their
tensors.

    python -m replications.grid_challenge.scripts.make_figures --profile P --analysis JSON
        --tensors FILE --handset JSON --handset-tensors FILE --figure-dir DIR

Writes every figure of the manifest (writeup.yaml) as PNG + PDF into --figure-dir.
"""

from __future__ import annotations

from replications.grid_challenge import plots
from replications.grid_challenge.config import WRITEUP
from replications.grid_challenge.scripts._common import setup
from shared.cli import add_paths, parse_and_setup, run, script_parser, user_errors
from shared.config import config_hash
from shared.figures import Provenance, save_writeup_figures
from shared.io import load_tensors, read_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(script_parser(__doc__.splitlines()[0]), "analysis", "tensors", "handset",
                  "handset_tensors", "figure_dir")
    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        summary = read_json(args.analysis)
        tensors = load_tensors(args.tensors)
        hs = read_json(args.handset)
        tensors.update(load_tensors(args.handset_tensors))
    prov = Provenance.make(WRITEUP, args.profile, config_hash(cfg))
    save_writeup_figures(WRITEUP, plots.all_figures(summary, hs, tensors), args.figure_dir, prov)


if __name__ == "__main__":
    run(main)
