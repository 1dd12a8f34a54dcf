"""Train the challenge's transformer full-batch on the training half of the grid.

    python -m replications.grid_challenge.scripts.train --profile P --checkpoint-dir DIR
        --out MODEL.safetensors --history HISTORY.json [--threads N]

Trains (resumable from --checkpoint-dir) and writes the weights (safetensors) and the logged
loss and accuracy history.
"""

from __future__ import annotations

import time

from replications.grid_challenge import train
from replications.grid_challenge.scripts._common import setup
from shared.cli import add_paths, log, parse_and_setup, run, script_parser, user_errors
from shared.io import write_json
from shared.runtime import pick_device


def main(argv: list[str] | None = None) -> None:
    p = add_paths(script_parser(__doc__.splitlines()[0], checkpoints=True), "out", "history")
    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        device = pick_device(cfg.train.device)
    t0 = time.perf_counter()
    ckpt = args.checkpoint_dir / "grid.safetensors"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    model, history = train.train(cfg, ckpt, device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    train.save_model(model.to("cpu"), cfg, args.out)
    write_json(args.history, {"history": history})
    last = history[-1]
    log(f"loss {last['loss']:.4f}, held-out accuracy {last.get('test_acc', 0):.4f} "
        f"after {int(last['step']) + 1} epochs ({time.perf_counter() - t0:.0f} s) -> {args.out}")


if __name__ == "__main__":
    run(main)
