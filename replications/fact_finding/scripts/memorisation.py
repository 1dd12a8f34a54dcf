"""Toy models of memorisation (post 4): train, probe, draw (rule ff_memorisation).

    python -m replications.fact_finding.scripts.memorisation --profile P --results R.json
        --metrics M.json --figure-training T.png --figure-probes P.png

Figure 1 (training): train and held-out accuracy over training for each task and depth.
Figure 2 (probes): probe accuracy by site (embedding, each block's neurons and residual,
logits) for the label and for the first input's identity, both depths, both tasks; for the
label, the model's own readout applied to each residual (the partial sum) as well.
"""

from __future__ import annotations

from replications.fact_finding import plots
from replications.fact_finding import toy_memorisation as M
from replications.fact_finding.scripts._common import parser, setup
from shared.cli import add_paths, log, parse_and_setup, run
from shared.config import config_hash
from shared.figures import Provenance, apply_style, save_figure
from shared.io import write_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0], model=False),
                  results="curves and probes (.json)", metrics="flat metrics (.json)",
                  figure_training=".png (+ .pdf)", figure_probes=".png (+ .pdf)")
    args, cfg = parse_and_setup(p, argv, setup)
    s = cfg.memorisation
    results = M.run(s)
    write_json(args.results, results)
    write_json(args.metrics, results["summary"])
    apply_style()
    prov = Provenance.make("fact_finding", args.profile, config_hash(s))
    save_figure(plots.memorisation_training_figure(results), args.figure_training, prov)
    save_figure(plots.memorisation_probes_figure(results), args.figure_probes, prov)
    for k, v in results["summary"].items():
        log(f"{k} = {v:.3f}")


if __name__ == "__main__":
    run(main)
