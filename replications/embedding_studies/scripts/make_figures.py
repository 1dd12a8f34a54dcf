"""Figures of the embedding studies from the three stages' outputs.

    python -m replications.embedding_studies.scripts.make_figures --profile P --puzzle1 DIR
        --directions DIR --positional DIR --figure-dir DIR

Writes every figure of the manifest (writeup.yaml) as PNG + PDF into --figure-dir.
"""

from __future__ import annotations

from replications.embedding_studies import plots
from replications.embedding_studies.config import WRITEUP
from replications.embedding_studies.scripts._common import setup
from shared.cli import add_paths, parse_and_setup, run, script_parser, user_errors
from shared.config import config_hash
from shared.figures import Provenance, save_writeup_figures
from shared.io import load_tensors, read_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(script_parser(__doc__.splitlines()[0]), "puzzle1", "directions", "positional",
                  "figure_dir")
    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        p1 = read_json(args.puzzle1 / "puzzle1.json")
        d, dt = (read_json(args.directions / "directions.json"),
                 load_tensors(args.directions / "directions.safetensors"))
        pos, pt = (read_json(args.positional / "positional.json"),
                   load_tensors(args.positional / "positional.safetensors"))
    prov = Provenance.make(WRITEUP, args.profile, config_hash(cfg))
    save_writeup_figures(WRITEUP, plots.all_figures(p1, d, dt, pos, pt), args.figure_dir, prov)


if __name__ == "__main__":
    run(main)
