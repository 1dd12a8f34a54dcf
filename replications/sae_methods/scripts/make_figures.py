"""Figures of the SAE-methods write-up from the sweeps, the ITO study and the analysis.

    python -m replications.sae_methods.scripts.make_figures --profile P --sweeps DIR [DIR ...]
        --ito DIR --analysis FILE --figure-dir DIR

Writes every figure of the manifest (writeup.yaml) as PNG + PDF into --figure-dir.
"""

from __future__ import annotations

from replications.sae_methods import plots
from replications.sae_methods.config import WRITEUP
from replications.sae_methods.scripts._common import add_result_args, read_results, setup
from shared.cli import add_paths, parse_and_setup, run, script_parser, user_errors
from shared.config import config_hash
from shared.figures import Provenance, save_writeup_figures
from shared.io import load_tensors, read_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(add_result_args(script_parser(__doc__.splitlines()[0])), "analysis",
                  "figure_dir")
    args, cfg = parse_and_setup(p, argv, setup)
    sweeps, norms, ito = read_results(args)
    with user_errors():
        ito_t = load_tensors(args.ito / "ito.safetensors")
        res = read_json(args.analysis)
    prov = Provenance.make(WRITEUP, args.profile, config_hash(cfg))
    figs = plots.all_figures(cfg, sweeps, norms[cfg.comparisons.improvements_site], ito, ito_t, res)
    save_writeup_figures(WRITEUP, figs, args.figure_dir, prov)


if __name__ == "__main__":
    run(main)
