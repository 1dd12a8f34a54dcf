"""Train the byte-level BPE tokenizer on a corpus and tokenize it into rows (DAG rule).

    python -m shared.scripts.train_tokenizer --corpus-dir DIR --out-dir DIR
        (--config JSON | --config-json FILE)

Reads DIR/train.txt and DIR/val.txt (from build_corpus); writes tokenizer.json (+ Hugging Face
wrapper files), tokens.safetensors and manifest.json into --out-dir.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from shared.cli import log, run, user_errors
from shared.scripts.common import add_config_args, resolve_config
from shared.tokenizer import TokenizerConfig, describe, train_and_tokenize


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_args(parser, "tokenizer")
    parser.add_argument("--corpus-dir", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    with user_errors():
        cfg = resolve_config(args, TokenizerConfig)
        t0 = time.perf_counter()
        manifest = train_and_tokenize(cfg, args.corpus_dir, args.out_dir,
                                      label=f"{args.profile}/{args.writeup}")
    log(f"{describe(manifest)}, {time.perf_counter() - t0:.1f} s -> {args.out_dir}")


if __name__ == "__main__":
    run(main)
