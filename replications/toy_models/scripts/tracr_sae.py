"""Train SAEs on the residual stream of converted Tracr models and score feature recovery.

Inputs: model directories written by tracr_compile (--models, one per program). Outputs: a JSON
of results and headline metrics (--out) and the per-variable recovery figure (--figure, PNG +
PDF beside it).
"""

from __future__ import annotations

import time
from pathlib import Path

from replications.toy_models.scripts._common import WRITEUP, open_inputs, parser
from shared.cli import add_paths, run
from shared.config import config_hash
from shared.figures import Provenance, apply_style, save_figure
from shared.io import write_json


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0], training=True)
    p.add_argument("--models", type=Path, nargs="+", required=True,
                   help="directories with model.safetensors + model.json")
    add_paths(p, out="results and metrics (.json)", figure="recovery figure (.png)")
    args, cfg, _ = open_inputs(p, argv)
    from replications.toy_models.tracr_models import load_converted
    from replications.toy_models.tracr_sae import plot_recovery, sae_on_program, summary_metrics

    sae_cfg = cfg.tracr.sae
    results = []
    for model_dir in args.models:
        start = time.perf_counter()
        model, info = load_converted(model_dir)
        res = sae_on_program(
            model, info, sae_cfg, cfg.seed,
            checkpoint_path=args.checkpoint_dir / f"tracr_sae_{info.program}.safetensors",
            fingerprint=f"{config_hash(sae_cfg)}/{info.program}/{info.d_model}/{cfg.seed}",
        )
        best = res["instances"][res["best_instance"]]
        print(f"[tracr_sae] {info.program}: MMCS {best['mmcs']:.3f} (L1 {best['l1_coeff']:g}), "
              f"missed {best['missed_variables']} ({time.perf_counter() - start:.1f}s)")
        results.append(res)
    write_json(args.out, {"metrics": summary_metrics(results), "programs": results})
    apply_style()
    fig = plot_recovery(results, sae_cfg.recovery_threshold)
    save_figure(fig, args.figure, Provenance.make(WRITEUP, args.profile, config_hash(cfg.tracr)))


if __name__ == "__main__":
    run(main)
