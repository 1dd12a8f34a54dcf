"""The circuit: activation patching, attribute heads, the effective model, sport probes per
layer and path patching between the lookup MLPs (rule ff_circuit).

    python -m replications.fact_finding.scripts.circuit --profile P --model M --facts F
        --out-dir DIR --patching-figure A.png --heads-figure B.png --effective-figure C.png
        --probes-figure D.png --paths-figure E.png --locus-figure F.png [--threads N]

Writes into --out-dir: metrics.json (the `circuit` numbers the claims read), circuit.safetensors
(the arrays behind the figures) and circuit.json (labels: positions, layers, the head used).
"""

from __future__ import annotations

import time

from replications.fact_finding import circuit as C
from replications.fact_finding import circuit_results as CR
from replications.fact_finding import circuit_steps as CS
from replications.fact_finding import plots as P
from replications.fact_finding.facts import context_line, known_prompts
from replications.fact_finding.plots_locus import plot_locus
from replications.fact_finding.scripts._common import open_inputs, parser
from shared.cli import add_paths, fail, log, run, user_errors
from shared.config import config_hash
from shared.figures import Provenance
from shared.io import save_tensors, write_json

FIGURES = ("patching", "heads", "effective", "probes", "paths", "locus")


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0]), "facts", "out_dir",
                  *(f"{name}_figure" for name in FIGURES))
    t0 = time.perf_counter()
    args, cfg, facts, model = open_inputs(p, argv, frozen=True)
    settings = cfg.circuit
    if settings.relation not in facts["known"]:
        fail(ValueError(f"{args.facts}: no known facts for relation '{settings.relation}'"))
    if settings.dtype != "float32":
        model.to(settings.torch_dtype)
    with user_errors():
        settings.check_model(model.cfg.n_layers, model.cfg.n_heads)
        prompts = known_prompts(facts, settings.relation, model.tokenizer,
                                model.tokenizer.bos_token_id)
        res = CR.analyse(model, prompts, settings, cfg.model.batch_size)
        in_context = known_prompts(facts, settings.relation, model.tokenizer,
                                   model.tokenizer.bos_token_id,
                                   context_line(facts, settings.relation))
        prior = CS.prior_context_similarity(model, prompts, in_context, settings.end_layer,
                                            cfg.model.batch_size)
    metrics = CR.summary_metrics(res, settings) | {"prior_context": prior}
    labels = CR.position_labels(prompts, model.tokenizer, res.patching.positions)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    save_tensors(args.out_dir / "circuit.safetensors", CR.result_tensors(res))
    write_json(args.out_dir / "circuit.json", {
        "positions": list(res.patching.positions), "position_labels": labels,
        "components": list(C.COMPONENTS), "head": list(res.head),
        "lookup_mlps": list(settings.lookup_mlps), "probe_sets": list(res.probes.accuracy),
        "path_metrics": list(C.PATH_METRICS), "answers": list(res.answers),
    })
    write_json(args.out_dir / "metrics.json", metrics)
    prov = Provenance.make("fact_finding", args.profile, config_hash(cfg))
    P.plot_patching(res, settings, labels, args.patching_figure, prov)
    P.plot_heads(res, settings, args.heads_figure, prov)
    P.plot_effective(res, settings, args.effective_figure, prov)
    P.plot_probes(res, settings, args.probes_figure, prov)
    P.plot_paths(res, settings, args.paths_figure, prov)
    plot_locus(res.locus, settings, res.n_answers, args.locus_figure, prov)
    eff = metrics["effective"]
    log(f"{res.n_prompts} prompts; head L{res.head[0]}H{res.head[1]}; effective "
        f"model {eff['effective_head']:.1%} (head OV), {eff['effective_probe']:.1%} (probe); "
        f"locus {metrics['locus']['probe']} (shuffled max {metrics['locus']['shuffled_max']:.2f}), "
        f"knockout {metrics['locus']['knockout']} (clean {metrics['locus']['clean_accuracy']:.2f}); "
        f"parts {res.timings}; {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    run(main)
