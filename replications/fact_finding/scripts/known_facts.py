"""Put every fact to the model; keep the two-token names it knows (rule ff_facts).

    python -m replications.fact_finding.scripts.known_facts --profile P --model M
        --out facts.json --figure recall.png

Stand-in: the world's people (world.json beside the model's results) and its made-up people.
Paper: the athlete table and the entity facts in replications/fact_finding/data/.
"""

from __future__ import annotations

from pathlib import Path

from replications.fact_finding import recall
from replications.fact_finding.facts import Relation
from replications.fact_finding.scripts._common import parser, setup
from replications.fact_finding.world import load_world
from shared.cli import add_paths, fail, log, parse_and_setup, run
from shared.config import config_hash
from shared.figures import Provenance
from shared.io import write_json
from shared.lm import load_model

PACKAGE = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--world", type=Path, help="world.json (stand-in profiles)")
    add_paths(p, "out", "figure")
    args, cfg = parse_and_setup(p, argv, setup)
    if cfg.model.source == "stand_in":
        if args.world is None:
            raise FileNotFoundError("--world is needed with the stand-in")
        world = load_world(args.world)
        relations = [Relation(r.name, r.phrase, r.values) for r in world.relations]
        people = [(q.first, q.last, dict(q.attributes)) for q in world.people]
        made_up = [(q.first, q.last, dict(q.attributes)) for q in world.made_up]
        entity_specs = None
    else:
        from replications.fact_finding import paper_data

        table = paper_data.load(cfg, PACKAGE)
        relations, people, made_up = table.relations, table.people, table.made_up
        entity_specs = table.entities
    model = load_model(args.model, device=cfg.model.device)
    bos = model.tokenizer.bos_token_id
    facts = recall.known_facts(model, model.tokenizer, relations, people, made_up,
                               cfg.model.prompt_prefix, bos, cfg.model.batch_size)
    n_known = len(facts["known"].get("sport", []))
    if n_known < cfg.model.min_known_people:
        fail(f"the model knows the sport of only {n_known} two-token names "
             f"(model.min_known_people is {cfg.model.min_known_people})")
    if entity_specs is None:
        name = recall.pick_entity(facts, relations)
        entity = recall.entity_facts(name, facts, people, relations, cfg.model.prompt_prefix)
    else:
        entity = entity_specs[0]
    facts["entity"] = recall.entity_known(model, entity)
    facts["model"] = cfg.model.name
    write_json(args.out, facts)
    recall.plot_recall(facts, args.figure,
                       Provenance.make("fact_finding", args.profile, config_hash(cfg)))
    log(f"{facts['counts']} accuracy {facts['accuracy']}; entity {entity['name']}")


if __name__ == "__main__":
    run(main)
