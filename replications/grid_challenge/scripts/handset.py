"""The post's validation: build the transformer with hand-set weights and compare it with the
labelling function on every input.

    python -m replications.grid_challenge.scripts.handset --profile P --out HANDSET.json
        --tensors TENSORS.safetensors [--threads N]

Writes the summary that `grid_metrics` puts under `handset` in metrics.json and the tensors
its figure draws. Needs no training (the same at every profile).
"""

from __future__ import annotations

from replications.grid_challenge import handset
from replications.grid_challenge.scripts._common import setup
from shared.cli import add_paths, log, parse_and_setup, run, script_parser
from shared.io import save_tensors, write_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(script_parser(__doc__.splitlines()[0]), "out", "tensors")
    args, _ = parse_and_setup(p, argv, setup)
    model, neurons = handset.build()
    summary, tensors = handset.evaluate(model, neurons)
    write_json(args.out, summary)
    save_tensors(args.tensors, {k: v.contiguous() for k, v in tensors.items()})
    log(f"{summary['n_neurons']} neurons; agreement with the labelling function "
        f"{summary['agreement']:.4f} ({summary['n_disagree']} cells differ)")


if __name__ == "__main__":
    run(main)
