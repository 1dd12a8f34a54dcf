"""Figures of the challenge-2 replication from the analysis, the hand-set model and their
tensors.

    python -m replications.grid_challenge.scripts.make_figures --profile P --analysis JSON
        --tensors FILE --handset JSON --handset-tensors FILE --figure-dir DIR

Writes every figure of the manifest (writeup.yaml) as PNG + PDF into --figure-dir.
"""

from __future__ import annotations

import sys
from pathlib import Path

from replications.grid_challenge import plots
from replications.grid_challenge.config import WRITEUP
from replications.grid_challenge.scripts._common import setup
from shared.cli import run, script_parser, user_errors
from shared.config import config_hash
from shared.figures import Provenance, save_writeup_figures
from shared.io import load_tensors, read_json


def main(argv: list[str] | None = None) -> None:
    p = script_parser(__doc__.splitlines()[0])
    p.add_argument("--analysis", type=Path, required=True)
    p.add_argument("--tensors", type=Path, required=True)
    p.add_argument("--handset", type=Path, required=True)
    p.add_argument("--handset-tensors", type=Path, required=True)
    p.add_argument("--figure-dir", type=Path, required=True)
    args = p.parse_args(argv)
    cfg = setup(args.profile, args.threads)
    with user_errors():
        summary = read_json(args.analysis)
        tensors = load_tensors(args.tensors)
        hs = read_json(args.handset)
        tensors.update(load_tensors(args.handset_tensors))
    prov = Provenance.make(WRITEUP, args.profile, config_hash(cfg))
    figures = plots.all_figures(summary, hs, tensors)
    save_writeup_figures(WRITEUP, figures, args.figure_dir, prov)
    print(f"[figures] {len(figures)} figures -> {args.figure_dir}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
