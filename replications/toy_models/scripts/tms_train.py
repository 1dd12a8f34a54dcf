"""Train the two TMS sparsity sweeps: 5 features / 2 hidden geometry and feature dimensionality.

Outputs one safetensors file (W, b_final, probabilities, importance of each sweep) and a JSON
log (final loss per instance, loss history).
"""

from __future__ import annotations

import time

import torch

from replications.toy_models.scripts._common import (
    open_inputs,
    output_metadata,
    parser,
    remove_finished,
)
from replications.toy_models.tms import (
    TMSConfig,
    TMSSweepConfig,
    evaluate_loss,
    importance_profile,
    load_finished,
    n_represented,
    sub_seed,
    sweep_probabilities,
    train_tms,
)
from shared.cli import add_paths, run
from shared.config import config_hash
from shared.io import save_tensors, write_json

SWEEPS: tuple[str, ...] = ("geometry", "dimensionality")


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0], training=True),
                  out="weights (.safetensors)", log="training log (.json)")
    args, cfg, device = open_inputs(p, argv)
    tcfg: TMSConfig = cfg.tms
    tensors, log = {}, {}
    for name in SWEEPS:
        sweep: TMSSweepConfig = getattr(tcfg, name)
        start = time.perf_counter()
        seed = sub_seed(cfg.seed, f"tms {name}")
        probability = sweep_probabilities(sweep.n_instances, sweep.min_probability)
        importance = importance_profile(sweep.n_features, sweep.importance_decay)
        fingerprint = f"{config_hash(tcfg)}/{name}/{seed}"
        done = args.checkpoint_dir / f"tms_train_{name}.done.safetensors"
        stored = load_finished(done, fingerprint)
        if stored is None:
            model, history = train_tms(
                n_hidden=sweep.n_hidden, importance=importance, feature_probability=probability,
                n_steps=sweep.n_steps, batch_size=tcfg.batch_size, lr=tcfg.lr, seed=seed,
                checkpoint_path=args.checkpoint_dir / f"tms_train_{name}.safetensors",
                fingerprint=fingerprint, checkpoint_every=tcfg.checkpoint_every,
                log_every=tcfg.log_every, desc=f"tms {name}", device=device,
            )
            W, b = model.W.detach().cpu(), model.b_final.detach().cpu()
            history_loss = torch.tensor([[row["step"], row["loss"]] for row in history])
            # Kept so that a crash in a later sweep does not retrain this one.
            save_tensors(done, {"W": W, "b_final": b, "history": history_loss},
                         {"fingerprint": fingerprint})
        else:
            W, b, history_loss = stored["W"], stored["b_final"], stored["history"]
        loss = evaluate_loss(W, b, importance, probability, 8192, seed)
        tensors.update({f"{name}.W": W, f"{name}.b_final": b,
                        f"{name}.probability": probability, f"{name}.importance": importance})
        represented = n_represented(W, tcfg.represented_threshold)
        log[name] = {"final_loss": loss.tolist(), "probability": probability.tolist(),
                     "n_represented": represented.tolist(),
                     "history": {"step": history_loss[:, 0].tolist(),
                                 "loss": history_loss[:, 1].tolist()}}
        print(f"[tms_train] {name}: {sweep.n_features} features / {sweep.n_hidden} hidden, "
              f"{sweep.n_instances} sparsities, {sweep.n_steps} steps in "
              f"{time.perf_counter() - start:.1f}s; represented per sparsity (dense->sparse): "
              f"{[int(r) for r in represented.tolist()]}")
    save_tensors(args.out, tensors, output_metadata(args.profile, tcfg))
    write_json(args.log, log)
    print(f"[tms_train] wrote {args.out} and {args.log}")
    remove_finished(args.checkpoint_dir, "tms_train_")


if __name__ == "__main__":
    run(main)
