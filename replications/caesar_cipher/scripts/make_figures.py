"""Figures of the Caesar-cipher replication from the analysis and its tensors.

    python -m replications.caesar_cipher.scripts.make_figures --profile P --analysis JSON
        --tensors FILE --figure-dir DIR

Writes every figure of the manifest (writeup.yaml) as PNG + PDF into --figure-dir.
"""

from __future__ import annotations

import sys
from pathlib import Path

from replications.caesar_cipher import plots
from replications.caesar_cipher.config import WRITEUP
from replications.caesar_cipher.scripts._common import setup
from shared.cli import run, script_parser, user_errors
from shared.config import config_hash
from shared.figures import Provenance, save_writeup_figures
from shared.io import load_tensors, read_json


def main(argv: list[str] | None = None) -> None:
    p = script_parser(__doc__.splitlines()[0])
    p.add_argument("--analysis", type=Path, required=True)
    p.add_argument("--tensors", type=Path, required=True)
    p.add_argument("--figure-dir", type=Path, required=True)
    args = p.parse_args(argv)
    cfg = setup(args.profile, args.threads)
    with user_errors():
        summary = read_json(args.analysis)
        tensors = load_tensors(args.tensors)
    prov = Provenance.make(WRITEUP, args.profile, config_hash(cfg))
    figures = plots.all_figures(summary, tensors)
    save_writeup_figures(WRITEUP, figures, args.figure_dir, prov)
    print(f"[figures] {len(figures)} figures -> {args.figure_dir}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
