"""Make the stand-in's synthetic world and its fact documents (rule ff_world).

    python -m replications.fact_finding.scripts.make_world --profile P --world W.json --docs D.jsonl
"""

from __future__ import annotations

from collections import Counter

from replications.fact_finding.scripts._common import parser, setup
from replications.fact_finding.world import documents, make_world, save_world, write_documents
from shared.cli import add_paths, log, parse_and_setup, run


def main() -> None:
    p = add_paths(parser(__doc__.splitlines()[0], model=False), "world", "docs")
    args, cfg = parse_and_setup(p, None, setup)
    world = make_world(cfg.world)
    docs = documents(world, cfg.world)
    save_world(world, args.world)
    write_documents(docs, args.docs)
    sports = Counter(person.attributes["sport"] for person in world.people)
    n_bytes = sum(len(d["text"].encode()) for d in docs)
    log(f"{len(world.people)} people ({dict(sorted(sports.items()))}), "
        f"{len(world.made_up)} made up; {len(docs)} documents, {n_bytes / 1e6:.2f} MB")


if __name__ == "__main__":
    run(main)
