"""Ablate each lookup neuron at the read position; correlate the effects across the entity's facts.

    python -m replications.fact_finding.scripts.neuron_facts --profile P --model M
        --facts facts.json --out-dir DIR --figure neuron_fact_correlation.png [--threads N]

Writes into --out-dir: metrics.json (correlations, clean log probs) and effects.safetensors
(the change in each fact's answer log prob for every lookup neuron).
"""

from __future__ import annotations

import time

from replications.fact_finding import neuron_facts, neurons, plots
from replications.fact_finding.facts import known_prompts
from replications.fact_finding.scripts._common import open_inputs, parser
from shared.cli import add_paths, log, run, user_errors
from shared.config import config_hash
from shared.figures import Provenance
from shared.io import save_tensors, write_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0]), "facts", "out_dir", "figure")
    t0 = time.perf_counter()
    args, cfg, facts, model = open_inputs(p, argv)
    with user_errors():
        neurons.check_inputs(model, facts, cfg.neurons)
        cfg.circuit.check_model(model.cfg.n_layers, model.cfg.n_heads)
        if "entity" not in facts:
            raise ValueError(f"{args.facts}: no entity (several facts of one person)")
        known = known_prompts(facts, "sport", model.tokenizer, model.tokenizer.bos_token_id)
    effects, metrics = neuron_facts.run_entity(model, facts, known, cfg.neurons,
                                               cfg.circuit.lookup_mlps, cfg.model.batch_size,
                                               cfg.circuit.read_position)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    save_tensors(args.out_dir / "effects.safetensors",
                 {"effects": effects.effects, "clean_logprob": effects.clean_logprob},
                 {"relations": ",".join(effects.relations)})
    write_json(args.out_dir / "metrics.json", metrics)
    where = "at the surname" if cfg.circuit.read_position == "surname" else "at the final token"
    plots.plot_entity(effects, metrics["entity"], cfg.neurons.entity_ablation, where,
                      args.figure, Provenance.make("fact_finding", args.profile,
                                                   config_hash(cfg)))
    log(f"{time.perf_counter() - t0:.0f} s: {metrics['entity']}, "
        f"{metrics['n_facts']} facts x {metrics['n_neurons']} neurons {where}; median |r| "
        f"{metrics['corr_median_abs']:.3f}, max |r| {metrics['corr_max_abs']:.3f}")


if __name__ == "__main__":
    run(main)
