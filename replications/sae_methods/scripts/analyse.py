"""The numbers the claims check, from every site's sweep and the ITO study.

    python -m replications.sae_methods.scripts.analyse --profile P --sweeps DIR [DIR ...]
        --ito DIR --out FILE

Each --sweeps folder holds one site's sweep.json (and norms.safetensors).
"""

from __future__ import annotations

from replications.sae_methods import analysis
from replications.sae_methods.scripts._common import add_result_args, read_results, setup
from shared.cli import add_paths, log, parse_and_setup, run, script_parser, user_errors
from shared.io import write_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(add_result_args(script_parser(__doc__.splitlines()[0])), "out")
    args, cfg = parse_and_setup(p, argv, setup)
    sweeps, norms, ito = read_results(args)
    with user_errors():
        out = analysis.analyse(cfg, sweeps, norms[cfg.comparisons.improvements_site], ito)
    write_json(args.out, out)
    g, i = out["ghost"], out["ito"]
    log(f"rescaled - original {g['rescaled_vs_original_min']}, ITO matched gain "
        f"{i['matched_gain_min']:.3f} -> {args.out}")


if __name__ == "__main__":
    run(main)
