"""Figures of the Caesar-cipher replication from the analysis and its tensors.

    python -m replications.caesar_cipher.scripts.make_figures --profile P --analysis JSON
        --tensors FILE --figure-dir DIR

Writes every figure of the manifest (writeup.yaml) as PNG + PDF into --figure-dir.
"""

from __future__ import annotations

from replications.caesar_cipher import plots
from replications.caesar_cipher.config import WRITEUP
from replications.caesar_cipher.scripts._common import setup
from shared.cli import add_paths, parse_and_setup, run, script_parser, user_errors
from shared.config import config_hash
from shared.figures import Provenance, save_writeup_figures
from shared.io import load_tensors, read_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(script_parser(__doc__.splitlines()[0]), "analysis", "tensors", "figure_dir")
    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        summary = read_json(args.analysis)
        tensors = load_tensors(args.tensors)
    prov = Provenance.make(WRITEUP, args.profile, config_hash(cfg))
    save_writeup_figures(WRITEUP, plots.all_figures(summary, tensors), args.figure_dir, prov)


if __name__ == "__main__":
    run(main)
