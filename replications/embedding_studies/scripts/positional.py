"""Emergent positional embeddings: word-index probes on the residual stream at every layer.

    python -m replications.embedding_studies.scripts.positional --profile P --model SPEC
        [--tokens FILE] --out-dir DIR

SPEC is the steering stand-in's directory (--tokens: its tokens.safetensors, whose validation
rows give the word list) or a model name (paper: gpt2; words from NeelNanda/pile-10k). Writes
--out-dir/positional.json and positional.safetensors (validation predictions at the layer).
"""

from __future__ import annotations

import sys

from replications.embedding_studies import positional
from replications.embedding_studies.scripts._common import add_model_args, model_and_rows, setup
from shared.cli import parse_and_setup, run, script_parser, user_errors
from shared.io import save_tensors, write_json


def main(argv: list[str] | None = None) -> None:
    p = add_model_args(script_parser(__doc__.splitlines()[0]))
    args, cfg = parse_and_setup(p, argv, setup)
    model, rows, label = model_and_rows("positional", args, cfg)
    with user_errors():
        out, tensors = positional.run_on_model(model, rows, cfg.positional, label)
    write_json(args.out_dir / "positional.json", out)
    save_tensors(args.out_dir / "positional.safetensors", tensors)
    print(f"[positional] layer {out['layer']}: accuracy {out['acc']:.3f} (baseline "
          f"{out['baseline_acc']:.3f}); position-balanced {out['balanced_acc']:.3f} (baseline "
          f"{out['balanced_baseline_acc']:.3f}) -> {args.out_dir}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
