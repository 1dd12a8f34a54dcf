"""Puzzle 1: pairwise cosines of token embeddings and of the residual stream per layer.

    python -m replications.embedding_studies.scripts.puzzle1 --profile P --model SPEC
        [--tokens FILE] --out-dir DIR

SPEC is the steering stand-in's directory (smoke, default; --tokens its tokens.safetensors) or
a model name (paper: EleutherAI/gpt-neo-125M; the text is NeelNanda/pile-10k by name). Writes
--out-dir/puzzle1.json.
"""

from __future__ import annotations

import sys

from replications.embedding_studies import embeddings
from replications.embedding_studies.scripts._common import add_model_args, model_and_rows, setup
from shared.cli import parse_and_setup, run, script_parser
from shared.io import write_json


def main(argv: list[str] | None = None) -> None:
    p = add_model_args(script_parser(__doc__.splitlines()[0]))
    args, cfg = parse_and_setup(p, argv, setup)
    model, rows, label = model_and_rows("puzzle1", args, cfg)
    out = embeddings.run(model, rows, cfg.puzzle1, cfg.figures.hist_bins, label)
    write_json(args.out_dir / "puzzle1.json", out)
    h = out["headline"]
    print(f"[puzzle1] embedding mean cosine {h['embed_mean_cos']:.3f}, centred "
          f"{h['embed_centred_mean_cos']:.3f}; residual raw mean over layers "
          f"{h['resid_raw_mean_cos_mean']:.3f} -> {args.out_dir}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
