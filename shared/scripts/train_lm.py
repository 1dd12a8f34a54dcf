"""Train a stand-in language model on the tokenized corpus (DAG rule); resumable.

    python -m shared.scripts.train_lm (--config JSON | --config-json FILE) [--writeup W --profile P]
        --tokens DIR/tokens.safetensors --out-dir DIR --checkpoint-dir DIR --figure PNG
        [--tokenizer-dir DIR] [--threads N] [--device auto|cpu|cuda]

The section is a `shared.lm_train.StandInConfig` ({"model": LMConfig, "train": LMTrainConfig}).
Writes --out-dir/model.safetensors, lm_config.json, history.json (+ the tokenizer files, so
`shared.lm.load_model(out_dir)` gives a model with its tokenizer) and the loss curve as
PNG + PDF. The checkpoint lives in --checkpoint-dir (outside the rule's outputs, so a killed
job keeps it); rerunning the same command resumes from it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from shared.cli import log, run, user_errors
from shared.config import ConfigError, config_hash
from shared.figures import Provenance
from shared.lm import describe_model, save_model
from shared.lm_train import StandInConfig, plot_loss_curve, train_lm, write_history
from shared.runtime import pick_device, seed_everything, set_threads
from shared.scripts.common import add_config_args, resolve_config
from shared.tokenizer import load_rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_args(parser, "lm")
    parser.add_argument("--tokens", type=Path, required=True, help="tokens.safetensors")
    parser.add_argument("--tokenizer-dir", type=Path, help="copied next to the weights")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--checkpoint-dir", type=Path, required=True)
    parser.add_argument("--figure", type=Path, required=True, help="loss curve (.png; + .pdf)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    with user_errors():
        cfg = resolve_config(args, StandInConfig)
        rows = load_rows(args.tokens)
        if args.figure.suffix != ".png":
            raise ConfigError(f"--figure must end in .png, got {args.figure}")
    set_threads(args.threads)
    seed_everything(cfg.train.seed)
    device = pick_device(args.device)
    ckpt = args.checkpoint_dir / "lm.safetensors"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model, history, tokens_per_s = train_lm(
        cfg, rows.train, rows.val, rows.vocab_size, ckpt, rows.sha256, device,
        desc=f"{args.writeup}:lm",
    )
    save_model(model, cfg.model, rows.vocab_size, args.out_dir, args.tokenizer_dir,
               {"tokens_sha256": rows.sha256})
    final = {k: history[-1][k] for k in ("loss", "val_loss") if k in history[-1]}
    write_history(args.out_dir / "history.json", history, {"final": final})
    provenance = Provenance.make(args.writeup, args.profile, config_hash(cfg))
    tokens_per_step = cfg.train.batch_size * min(cfg.model.n_ctx, rows.train.shape[1])
    plot_loss_curve(history, tokens_per_step, args.figure, provenance,
                    f"stand-in LM ({cfg.model.n_layers}L, d_model {cfg.model.d_model})")
    log(f"{describe_model(model)} final {final}, {tokens_per_s:.0f} tokens/s, "
        f"{time.perf_counter() - t0:.0f} s -> {args.out_dir}")


if __name__ == "__main__":
    run(main)
