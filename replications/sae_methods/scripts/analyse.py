"""The numbers the claims check, from every site's sweep and the ITO study.

    python -m replications.sae_methods.scripts.analyse --profile P --sweeps DIR [DIR ...]
        --ito DIR --out FILE

Each --sweeps folder holds one site's sweep.json (and norms.safetensors).
"""

from __future__ import annotations

from pathlib import Path

from replications.sae_methods import analysis
from replications.sae_methods.scripts._common import setup
from shared.cli import log, parse_and_setup, run, script_parser, user_errors
from shared.io import load_tensors, read_json, write_json


def read_sweeps(dirs: list[Path]) -> tuple[dict, dict]:
    """Site name -> summary, and site name -> norm statistics."""
    sweeps, norms = {}, {}
    for d in dirs:
        s = read_json(d / "sweep.json")
        sweeps[s["site"]] = s
        norms[s["site"]] = load_tensors(d / "norms.safetensors")
    return sweeps, norms


def main(argv: list[str] | None = None) -> None:
    p = script_parser(__doc__.splitlines()[0])
    p.add_argument("--sweeps", type=Path, nargs="+", required=True)
    p.add_argument("--ito", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        sweeps, norms = read_sweeps(args.sweeps)
        ito = read_json(args.ito / "ito.json")
        out = analysis.analyse(cfg, sweeps, norms[cfg.comparisons.improvements_site], ito)
    write_json(args.out, out)
    g, i = out["ghost"], out["ito"]
    log(f"rescaled - original {g['rescaled_vs_original_min']}, ITO matched gain "
        f"{i['matched_gain_min']:.3f} -> {args.out}")


if __name__ == "__main__":
    run(main)
