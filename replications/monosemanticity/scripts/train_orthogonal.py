"""Retrain the SAE held orthogonal to the first SAE's ultra-low direction.

    python -m replications.monosemanticity.scripts.train_orthogonal --profile P --model SPEC
        --tokens FILE --from DIR --out-dir DIR --checkpoint-dir DIR [--threads N]

The write-up: 'forcing the autoencoder weights to be orthogonal to this average ultra low
feature direction at each time step'. After every optimiser step (and before the first) the
direction is projected out of every encoder vector and decoder row (`analysis.orthogonalise_`).
The direction is the unit mean encoder vector of --from's ultra-low features; when it has
fewer than `orthogonal.min_cluster` of them, of its rarest firing features instead (recorded
in direction.json and the metrics). Same seed and data as the first SAE. Outputs as train_sae,
plus direction.safetensors / direction.json.
"""

from __future__ import annotations

from pathlib import Path

from replications.monosemanticity import training
from replications.monosemanticity.analysis import orthogonalise_
from replications.monosemanticity.scripts._common import open_inputs, parser
from shared.cli import add_paths, log, run, user_errors
from shared.io import save_tensors, write_json
from shared.sae_io import load_sae_lens


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", type=Path, required=True,
                   help="the first SAE's output directory")
    add_paths(p, "out_dir", "checkpoint_dir")
    args, cfg, model, tokens = open_inputs(p, argv)
    with user_errors():
        first, _, _ = load_sae_lens(args.source)
        freq, _ = training.load_frequency(args.source)
    direction = training.ultra_low_direction(first, freq, cfg)
    device = next(model.parameters()).device
    u = direction.vector.to(device)

    def project(sae) -> None:
        orthogonalise_(sae, u)

    args.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    result = training.train_run(
        cfg, cfg.sae, model, tokens, args.checkpoint_dir / "sae_orthogonal.safetensors",
        {"run": "orthogonal", "direction": direction.vector.tolist()},
        desc="mono sae orthogonal", after_step=project,
    )
    metrics, freq_new, n_tokens = training.final_evaluation(cfg, model, tokens, result.sae)
    enc = result.sae.W_enc[0].detach().cpu().T
    cos = (enc @ direction.vector) / enc.norm(dim=-1).clamp_min(1e-12)
    metrics["max_abs_enc_cos_with_direction"] = float(cos.abs().max())
    training.save_run(args.out_dir, cfg, result.sae, freq_new, n_tokens)
    save_tensors(args.out_dir / training.DIRECTION_FILE, {"direction": direction.vector})
    write_json(args.out_dir / "direction.json",
               {"from_ultra_low": direction.from_ultra_low, "n_features": direction.n_features,
                "rule": ("unit mean encoder vector of the first SAE's ultra-low features"
                         if direction.from_ultra_low else
                         f"fallback: fewer than {cfg.orthogonal.min_cluster} ultra-low features;"
                         f" unit mean encoder vector of the {direction.n_features} rarest "
                         f"firing features ({cfg.orthogonal.fallback_fraction:g} of those "
                         f"that fired)")})
    write_json(args.out_dir / "history.json",
               {"history": result.history, "run": "orthogonal", "seed": cfg.sae.seed,
                "tokens_per_step": cfg.sae.batch_size})
    write_json(args.out_dir / "eval.json", metrics)
    log(f"direction from "
        f"{'ultra-low' if direction.from_ultra_low else 'fallback'} ({direction.n_features} "
        f"features); {result.seconds:.0f} s; max |cos| with it {float(cos.abs().max()):.2e}; "
        f"ultra-low {metrics['ultra_low_fraction']:.3f} -> {args.out_dir}")


if __name__ == "__main__":
    run(main)
