"""The residual-stream SAE at the steering layer: train it, or load a SAELens directory.

    python -m replications.steering.scripts.train_sae --profile P --model SPEC --tokens FILE
        --out-dir DIR --checkpoint-dir DIR [--threads N]

`sae_run.source: train` trains `sae` on the training rows with the shared trainer and buffer
(resumable from --checkpoint-dir); `load` reads `sae_run.load_dir` (SAELens format). Either way
the SAE is evaluated on the held-out rows and written to --out-dir in SAELens format
(cfg.json, sae_weights.safetensors, sparsity.safetensors) with frequency.safetensors,
history.json (training only) and eval.json (ce_clean, ce_sae, loss recovered, L0, dense share).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from replications.steering import sae_run
from replications.steering.scripts._common import open_inputs, parser
from shared.activations import model_device
from shared.cli import add_paths, run, user_errors
from shared.config import ConfigError
from shared.io import write_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0]), "out_dir", "checkpoint_dir")
    args, cfg, model, rows = open_inputs(p, argv)
    with user_errors():
        if cfg.model.hook_name not in model.hook_dict:
            raise ConfigError(f"model.layer {cfg.model.layer}: the model has "
                              f"{model.cfg.n_layers} layers")
        if cfg.sae_run.source == "train" and cfg.sae.d_in != model.cfg.d_model:
            raise ConfigError(f"sae.d_in {cfg.sae.d_in} != the model's d_model "
                              f"{model.cfg.d_model}")
    t0 = time.perf_counter()
    history: list = []
    if cfg.sae_run.source == "train":
        args.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        sae, history = sae_run.train(cfg, model, rows.sae_train,
                                     args.checkpoint_dir / "sae.safetensors", rows.sha256)
    else:
        with user_errors():
            sae, _ = sae_run.load(Path(cfg.sae_run.load_dir), cfg, model.cfg.d_model,
                                  model_device(model))
    seconds = time.perf_counter() - t0
    metrics, freq = sae_run.evaluate(cfg, model, sae, rows.sae_eval)
    metrics["source"] = cfg.sae_run.source
    sae_run.save(args.out_dir, cfg, sae, freq, rows.sae_train.shape[1])
    write_json(args.out_dir / "history.json", {"history": history,
                                               "tokens_per_step": cfg.sae.batch_size})
    write_json(args.out_dir / "eval.json", metrics)
    print(f"[steer sae] {cfg.sae_run.source} in {seconds:.0f} s: L0 {metrics['l0']:.1f}, CE "
          f"{metrics['ce_clean']:.3f} -> {metrics['ce_sae']:.3f} spliced (zero ablation "
          f"{metrics['ce_zero_ablation']:.3f}, recovered {metrics['loss_recovered']:.3f}), "
          f"dead {metrics['dead_fraction']:.3f}, dense {metrics['n_dense']:.0f} -> {args.out_dir}",
          file=sys.stderr)


if __name__ == "__main__":
    run(main)
