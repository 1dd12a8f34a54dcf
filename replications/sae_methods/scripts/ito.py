"""Inference-time optimisation on the dictionaries of the ITO site's SAEs.

    python -m replications.sae_methods.scripts.ito --profile P --model SPEC [--tokens FILE]
        --sweep DIR --out-dir DIR

--sweep is the ITO site's sweep folder (its saes/<ito.method>/<i>/ are the dictionaries).
Writes --out-dir/ito.json and ito.safetensors (the scatter pairs, smallest active values).
"""

from __future__ import annotations

from pathlib import Path

from replications.sae_methods import ito_study, sweep
from replications.sae_methods.scripts._common import add_model_args, load_site_model, setup
from shared.cli import log, parse_and_setup, run, script_parser, user_errors
from shared.io import save_tensors, write_json
from shared.sae_io import load_sae


def main(argv: list[str] | None = None) -> None:
    p = add_model_args(script_parser(__doc__.splitlines()[0]))
    p.add_argument("--sweep", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    args, cfg = parse_and_setup(p, argv, setup)
    ic = cfg.ito
    site = cfg.site(ic.site)
    model = load_site_model("ito", args, cfg)
    with user_errors():
        rows = sweep.load_rows(cfg, site, model, args.tokens)
        device = next(model.parameters()).device
        saes = [load_sae(args.sweep / "saes" / ic.method / str(i), device).sae
                for i in range(len(site.l1_coeffs))]
        out, tensors = ito_study.run(model, rows.eval[: ic.eval_rows], saes, list(site.l1_coeffs),
                                     site.hook, cfg.data.drop_bos, ic)
    write_json(args.out_dir / "ito.json", out)
    save_tensors(args.out_dir / "ito.safetensors", tensors)
    log(f"{ito_study.describe(out)} -> {args.out_dir}")


if __name__ == "__main__":
    run(main)
