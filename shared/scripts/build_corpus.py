"""Assemble the local prose + code corpus (DAG rule): train.txt, val.txt, manifest.json.

    python -m shared.scripts.build_corpus --out-dir DIR (--config JSON | --config-json FILE)
        [--extra-docs FILE.jsonl ...]

Extra documents (JSON lines with "source", "name", "text") are write-up material such as
synthetic fact sentences; they go to the training split.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from shared.cli import log, run, user_errors
from shared.corpus import CorpusConfig, Document, build_corpus
from shared.scripts.common import add_config_args, resolve_config


def read_extra(paths: list[Path]) -> list[Document]:
    """Documents from JSON-lines files ({"source", "name", "text"} per line)."""
    docs = []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing extra-documents file")
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                row = json.loads(line)
                try:
                    docs.append(Document(str(row["source"]), str(row["name"]), str(row["text"])))
                except KeyError as err:
                    raise ValueError(f"{path}:{i + 1}: missing field {err}") from None
    return docs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_args(parser, "corpus")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--extra-docs", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    with user_errors():
        cfg = resolve_config(args, CorpusConfig)
        t0 = time.perf_counter()
        manifest = build_corpus(cfg, args.out_dir, read_extra(args.extra_docs),
                                label=f"{args.profile}/{args.writeup}")
    log(f"{manifest['docs']} documents, bytes {manifest['bytes']}, "
        f"{time.perf_counter() - t0:.1f} s -> {args.out_dir}")


if __name__ == "__main__":
    run(main)
