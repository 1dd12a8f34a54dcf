"""Emergent positional embeddings: word-index probes on the residual stream at every layer.

    python -m replications.embedding_studies.scripts.positional --profile P --model SPEC
        [--tokens FILE] --out-dir DIR

SPEC is the steering stand-in's directory (--tokens: its tokens.safetensors, whose validation
rows give the word list) or a model name (paper: gpt2; words from NeelNanda/pile-10k). Writes
--out-dir/positional.json and positional.safetensors (validation predictions at the layer).
"""

from __future__ import annotations

from replications.embedding_studies import positional
from replications.embedding_studies.scripts._common import stage_main
from shared.cli import run


def main(argv: list[str] | None = None) -> None:
    stage_main("positional", __doc__, argv,
               lambda model, rows, cfg, label: positional.run_on_model(model, rows,
                                                                       cfg.positional, label),
               positional.describe)


if __name__ == "__main__":
    run(main)
