"""Train an SAE on the LM's MLP activations (the write-up's SAE, or its second seed).

    python -m replications.monosemanticity.scripts.train_sae --profile P --run main|seed2
        --model SPEC --tokens FILE --out-dir DIR --checkpoint-dir DIR [--threads N]

--run main trains `sae` as configured; seed2 the same with `second_seed.seed`. Writes into
--out-dir the SAE in SAELens format (cfg.json, sae_weights.safetensors, sparsity.safetensors),
frequency.safetensors (firing frequency of every feature over the held-out rows),
history.json (training loss, L0, periodic evaluations) and eval.json (final metrics on the
held-out rows). The checkpoint in --checkpoint-dir makes a rerun resume.
"""

from __future__ import annotations

import dataclasses

from replications.monosemanticity import training
from replications.monosemanticity.scripts._common import open_inputs, parser
from shared.cli import add_paths, log, run
from shared.io import write_json


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--run", choices=("main", "seed2"), required=True)
    add_paths(p, "out_dir", "checkpoint_dir")
    args, cfg, model, tokens = open_inputs(p, argv)
    sae_cfg = cfg.sae if args.run == "main" else dataclasses.replace(
        cfg.sae, seed=cfg.second_seed.seed)
    args.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    result = training.train_run(cfg, sae_cfg, model, tokens,
                            args.checkpoint_dir / f"sae_{args.run}.safetensors",
                            {"run": args.run}, desc=f"mono sae {args.run}")
    metrics, freq, n_tokens = training.final_evaluation(cfg, model, tokens, result.sae)
    training.save_run(args.out_dir, cfg, result.sae, freq, n_tokens)
    write_json(args.out_dir / "history.json",
               {"history": result.history, "run": args.run, "seed": sae_cfg.seed,
                "tokens_per_step": sae_cfg.batch_size})
    write_json(args.out_dir / "eval.json", metrics)
    log(f"{args.run}: {sae_cfg.n_steps} steps x {sae_cfg.batch_size} in "
        f"{result.seconds:.0f} s; L0 {metrics['l0']:.1f}, loss recovered "
        f"{metrics['loss_recovered']:.3f} (mean ablation {metrics['mean_ablation_recovered']:.3f}),"
        f" dead {metrics['dead_fraction']:.3f}, ultra-low {metrics['ultra_low_fraction']:.3f} "
        f"-> {args.out_dir}")


if __name__ == "__main__":
    run(main)
