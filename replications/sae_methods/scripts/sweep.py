"""Train and evaluate every method of one site (each with the site's L1 sweep, batched).

    python -m replications.sae_methods.scripts.sweep --profile P --site NAME --model SPEC
        [--tokens FILE] --out-dir DIR --checkpoint-dir DIR --timing FILE

SPEC is the monosemanticity stand-in's directory (smoke, default; --tokens its
tokens.safetensors) or the site's model by name (paper). Writes --out-dir/sweep.json,
norms.safetensors and saes/<method>/<i>/ (SAELens); --timing gets the wall seconds per step of
each method (kept apart: results are byte-stable, timings are not).
"""

from __future__ import annotations

from pathlib import Path

from replications.sae_methods import sweep
from replications.sae_methods.scripts._common import add_model_args, load_site_model, setup
from shared.cli import log, parse_and_setup, run, script_parser, user_errors
from shared.io import write_json


def main(argv: list[str] | None = None) -> None:
    p = add_model_args(script_parser(__doc__.splitlines()[0], checkpoints=True))
    p.add_argument("--site", required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--timing", type=Path, required=True)
    p.add_argument("--log-every", type=int, default=50)
    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        site = cfg.site(args.site)
    model = load_site_model(f"sweep:{site.name}", args, cfg)
    with user_errors():
        rows = sweep.load_rows(cfg, site, model, args.tokens)
        result = sweep.train_site(cfg, site, model, rows, args.checkpoint_dir, args.log_every)
    name = site.model or "stand-in-gelu-1l"
    summary = sweep.save_site(args.out_dir, cfg, site, result, name, cfg.data.seq_len)
    write_json(args.timing, {"seconds_per_step": result.seconds_per_step,
                             "batch_size": cfg.sae["batch_size"], "site": site.name})
    for m, v in summary["methods"].items():
        log(f"{site.name} {m}: L0 {[round(x, 1) for x in v['l0']]}, loss recovered "
            f"{[round(x, 3) for x in v['loss_recovered']]}, "
            f"{result.seconds_per_step[m] * 1e3:.1f} ms/step")


if __name__ == "__main__":
    run(main)
