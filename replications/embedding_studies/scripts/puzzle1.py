"""Puzzle 1: pairwise cosines of token embeddings and of the residual stream per layer.

    python -m replications.embedding_studies.scripts.puzzle1 --profile P --model SPEC
        [--tokens FILE] --out-dir DIR

SPEC is the steering stand-in's directory (smoke, default; --tokens its tokens.safetensors) or
a model name (paper: EleutherAI/gpt-neo-125M; the text is NeelNanda/pile-10k by name). Writes
--out-dir/puzzle1.json.
"""

from __future__ import annotations

from replications.embedding_studies import embeddings
from replications.embedding_studies.scripts._common import stage_main
from shared.cli import run


def main(argv: list[str] | None = None) -> None:
    stage_main("puzzle1", __doc__, argv,
               lambda model, rows, cfg, label: (embeddings.run(model, rows, cfg.puzzle1, label),
                                                None),
               embeddings.describe)


if __name__ == "__main__":
    run(main)
