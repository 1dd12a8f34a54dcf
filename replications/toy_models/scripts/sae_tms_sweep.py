"""Train the TMS whose hidden state the SAEs read, then the SAE width x L1 sweep on it.

Outputs a results JSON (MMCS, L0, FVU and dead share per width and L1; the number of features
the TMS represents) and a safetensors file (the TMS W and every SAE decoder).
"""

from __future__ import annotations

import time

import torch

from replications.toy_models.sae_tms import SAETMSConfig, run_width_sweep, train_source_tms
from replications.toy_models.scripts._common import open_inputs, save_study, study_parser
from replications.toy_models.tms import sub_seed
from shared.cli import run
from shared.config import config_hash


def main(argv: list[str] | None = None) -> None:
    args, cfg, device = open_inputs(study_parser(__doc__.splitlines()[0]), argv)
    scfg: SAETMSConfig = cfg.sae_tms
    fingerprint = f"{config_hash(scfg)}/{cfg.seed}/sweep"
    start = time.perf_counter()
    W, b, tms_loss = train_source_tms(
        scfg, scfg.n_features, scfg.n_hidden, sub_seed(cfg.seed, "sae_tms source"),
        args.checkpoint_dir / "sae_tms_sweep_tms.safetensors", f"{fingerprint}/tms", device,
    )
    tms_time = time.perf_counter() - start
    results, decoders = run_width_sweep(scfg, W, cfg.seed, args.checkpoint_dir, fingerprint,
                                        device)
    results["tms_final_loss"] = tms_loss
    save_study(args, scfg, results, {"tms.W": W, "tms.b_final": b, **decoders}, "sae_tms_sweep_")
    best = torch.tensor(results["mmcs"]).mean(-1).max(dim=1).values  # best L1 by seed mean
    print(f"[sae_tms_sweep] TMS {scfg.n_features}/{scfg.n_hidden}: {results['n_represented']} "
          f"features represented ({tms_time:.1f}s); SAE sweep in "
          f"{time.perf_counter() - start - tms_time:.1f}s")
    for mult, width, score in zip(scfg.width_multiples, results["widths"], best.tolist()):
        print(f"[sae_tms_sweep]   width {width:3d} ({mult:.2f} x F): seed-mean MMCS at the "
              f"best L1 {score:.3f}")


if __name__ == "__main__":
    run(main)
