"""Puzzle 2: the token-length regression and further word2vec-style directions in W_E.

    python -m replications.embedding_studies.scripts.directions --profile P --model SPEC
        --out-dir DIR

SPEC is the steering stand-in's directory or a model name (paper: gpt2). Writes
--out-dir/directions.json and directions.safetensors (held-out predictions).
"""

from __future__ import annotations

from replications.embedding_studies import directions
from replications.embedding_studies.scripts._common import stage_main
from shared.cli import run


def main(argv: list[str] | None = None) -> None:
    stage_main("directions", __doc__, argv,
               lambda model, _, cfg, label: directions.run_on_model(model, cfg.directions, label),
               directions.describe, rows=False)


if __name__ == "__main__":
    run(main)
