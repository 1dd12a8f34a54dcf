"""Train the post's model on one mode (easy, medium or hard).

    python -m replications.caesar_cipher.scripts.train --profile P --mode M
        --checkpoint-dir DIR --out MODEL.safetensors --history HISTORY.json [--threads N]

Builds the mode's fixed training set from the pinned text, trains (resumable from
--checkpoint-dir) and writes the weights (safetensors) and the logged loss history.
"""

from __future__ import annotations

import time

from replications.caesar_cipher import data, train
from replications.caesar_cipher.scripts._common import setup
from shared.cli import add_paths, log, parse_and_setup, run, script_parser, user_errors
from shared.io import write_json
from shared.runtime import pick_device


def main(argv: list[str] | None = None) -> None:
    p = script_parser(__doc__.splitlines()[0], checkpoints=True)
    p.add_argument("--mode", required=True, choices=data.MODES)
    add_paths(p, "out", "history")
    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        if args.mode not in cfg.train.modes:
            raise ValueError(f"mode {args.mode} is not in train.modes {list(cfg.train.modes)}")
        md = train.mode_data(cfg, args.mode)
        device = pick_device(cfg.train.device)
    t0 = time.perf_counter()
    ckpt = args.checkpoint_dir / f"caesar_{args.mode}.safetensors"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    model, history = train.train(cfg, args.mode, md, ckpt, device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    train.save_model(model, cfg, args.mode, args.out)
    # No wall time here: outputs stay identical across reruns; the rule's benchmark file has it.
    write_json(args.history, {"mode": args.mode, "history": history})
    log(f"{args.mode}: final loss {history[-1]['loss']:.3f} after "
        f"{int(history[-1]['step']) + 1} steps ({time.perf_counter() - t0:.0f} s) -> {args.out}")


if __name__ == "__main__":
    run(main)
