"""Resampling study: TMS models at increasing F/H ratios, SAEs of width = represented features
trained without and with resampling of dead features (several L1 values and seeds each).

Outputs a results JSON (per ratio and mode: MMCS, dead share, L0, FVU per L1 and seed) and a
safetensors file (each TMS W and SAE decoder).
"""

from __future__ import annotations

import time

from replications.toy_models.sae_tms import SAETMSConfig, run_resampling_study
from replications.toy_models.sae_tms_metrics import best_seed_mean_mmcs
from replications.toy_models.scripts._common import open_inputs, save_study, study_parser
from shared.cli import run
from shared.config import config_hash


def main(argv: list[str] | None = None) -> None:
    args, cfg, device = open_inputs(study_parser(__doc__.splitlines()[0]), argv)
    scfg: SAETMSConfig = cfg.sae_tms
    start = time.perf_counter()
    study, weights = run_resampling_study(
        scfg, cfg.seed, args.checkpoint_dir, f"{config_hash(scfg)}/{cfg.seed}/resampling", device
    )
    save_study(args, scfg, study, weights, "sae_tms_resampling_")
    print(f"[sae_tms_resampling] {len(study['ratios'])} ratios x {len(study['modes'])} modes "
          f"in {time.perf_counter() - start:.1f}s")
    for entry in study["per_ratio"]:
        parts = [f"{mode} {best_seed_mean_mmcs(entry, mode)[0]:.3f}" for mode in study["modes"]]
        print(f"[sae_tms_resampling]   F/H = {entry['ratio']:2d} ({entry['n_represented']}/"
              f"{entry['n_features']} represented): best seed-mean MMCS " + ", ".join(parts))


if __name__ == "__main__":
    run(main)
