"""Write the synthetic anger / calm / wedding / ordinary-topic documents (stand-in corpus).

    python -m replications.steering.scripts.make_docs --profile P --out DIR/docs.jsonl

JSON lines ({"source", "name", "text"}) for `shared.scripts.build_corpus --extra-docs`;
deterministic for the configured seed.
"""

from __future__ import annotations

from replications.steering.docs import generate_documents, write_documents
from replications.steering.scripts._common import parser, setup
from shared.cli import add_paths, log, parse_and_setup, run


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0], model=False, tokens=False), "out")
    args, cfg = parse_and_setup(p, argv, setup)
    docs = generate_documents(cfg.docs)
    write_documents(docs, args.out)
    n_bytes = sum(len(d["text"].encode("utf-8")) for d in docs)
    log(f"{len(docs)} documents, {n_bytes} bytes -> {args.out}")


if __name__ == "__main__":
    run(main)
