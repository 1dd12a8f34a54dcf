"""Puzzle 2: the token-length regression and further word2vec-style directions in W_E.

    python -m replications.embedding_studies.scripts.directions --profile P --model SPEC
        --out-dir DIR

SPEC is the steering stand-in's directory or a model name (paper: gpt2). Writes
--out-dir/directions.json and directions.safetensors (held-out predictions).
"""

from __future__ import annotations

import sys

from replications.embedding_studies import directions
from replications.embedding_studies.scripts._common import add_model_args, model_and_rows, setup
from shared.cli import parse_and_setup, run, script_parser, user_errors
from shared.io import save_tensors, write_json


def main(argv: list[str] | None = None) -> None:
    p = add_model_args(script_parser(__doc__.splitlines()[0]), tokens=False)
    args, cfg = parse_and_setup(p, argv, setup)
    model, _, label = model_and_rows("directions", args, cfg, rows=False)
    with user_errors():
        out, tensors = directions.run_on_model(model, cfg.directions, label)
    write_json(args.out_dir / "directions.json", out)
    save_tensors(args.out_dir / "directions.safetensors", tensors)
    ln = out["length"]
    print(f"[directions] length R^2 held-out {ln['heldout_r2']:.3f} (shuffled max "
          f"{ln['shuffled_r2_max']:.3f}); space acc {out['space']['heldout_acc']:.3f}; capital "
          f"acc {out['capital']['heldout_acc']:.3f} -> {args.out_dir}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
