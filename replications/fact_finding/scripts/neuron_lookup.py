"""The lookup MLPs on the known people and the name grid: non-linear excess, the selective
neuron, known vs unknown MLP norms, linear structure against shuffled MLPs.

    python -m replications.fact_finding.scripts.neuron_lookup --profile P --model M
        --facts facts.json --out-dir DIR --excess-figure A.png --selective-figure B.png
        --norms-figure C.png --linearity-figure D.png [--threads N]

Writes into --out-dir: metrics.json and lookup.safetensors (per-person excess, the selective
neuron's activations and every lookup neuron's AUC, norms, parallelogram ratios).
"""

from __future__ import annotations

import time

from replications.fact_finding import neuron_lookup, neurons, plots
from replications.fact_finding.facts import known_prompts
from replications.fact_finding.scripts._common import open_inputs, parser
from shared.cli import add_paths, log, run, user_errors
from shared.config import config_hash
from shared.figures import Provenance
from shared.io import save_tensors, write_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0]), "facts", "out_dir",
                  *(f"{name}_figure" for name in ("excess", "selective", "norms", "linearity")))
    t0 = time.perf_counter()
    args, cfg, facts, model = open_inputs(p, argv)
    with user_errors():
        neurons.check_inputs(model, facts, cfg.neurons)
        known = known_prompts(facts, "sport", model.tokenizer, model.tokenizer.bos_token_id)
        circ = neurons.lookup_circuit(model, known, cfg.circuit, cfg.model.batch_size)
        result, metrics = neuron_lookup.run_lookup(model, facts, known, cfg.neurons, circ,
                                                   cfg.model.batch_size)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    ex, sel = result.excess, result.selective
    selective = {} if sel is None else {
        "selective_acts": sel.acts, "selective_positive": sel.positive.float(),
        "auc_by_neuron": sel.auc_by_neuron}
    save_tensors(args.out_dir / "lookup.safetensors", {
        "excess_total": ex.total, "excess_gelu_part": ex.gelu_part,
        "excess_label": result.excess_label, **selective,
        "norms_known": result.norms_known, "norms_unknown": result.norms_unknown,
        **{f"linearity_{k}": v for k, v in result.linearity.items()},
    })
    write_json(args.out_dir / "metrics.json", metrics)
    prov = Provenance.make("fact_finding", args.profile, config_hash(cfg))
    plots.plot_excess(result, args.excess_figure, prov)
    plots.plot_selective(result, args.selective_figure, prov)
    plots.plot_norms(result, args.norms_figure, prov)
    plots.plot_linearity(result, args.linearity_figure, prov)
    s, lin = metrics["selective_neuron"], metrics["linearity"]
    neuron = (f"selective neuron not measured ({s['unmeasured']})" if "unmeasured" in s else
              f"{s['name']} AUC {s['auc']:.3f}, loss {s['loss_clean']:.3f} -> "
              f"{s['loss_mean_ablated']:.3f} (mean) / {s['loss_zero_ablated']:.3f} (zero)")
    log(f"{time.perf_counter() - t0:.0f} s ({result.where}): excess median ratio "
        f"{metrics['nonlinear_excess']['median_ratio']:.3f}; {neuron}; linearity MLP "
        f"{lin['mlp']['mean']:.2f} vs shuffled {lin['mlp_shuffled']['mean']:.2f}")


if __name__ == "__main__":
    run(main)
