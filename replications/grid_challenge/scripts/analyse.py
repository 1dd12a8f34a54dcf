"""Analyse the trained model as the solution does: labels and errors, neuron families, probes,
attention ablation, the positional QK circuit, extended embeddings.

    python -m replications.grid_challenge.scripts.analyse --profile P --model MODEL.safetensors
        --out ANALYSIS.json --tensors TENSORS.safetensors [--threads N]

Writes the summary that `grid_metrics` puts under `analysis` in metrics.json and the tensors
the figures draw.
"""

from __future__ import annotations

from replications.grid_challenge import analysis, train
from replications.grid_challenge.scripts._common import setup
from shared.cli import add_paths, log, parse_and_setup, run, script_parser, user_errors
from shared.io import save_tensors, write_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(script_parser(__doc__.splitlines()[0]), "model", "out", "tensors")
    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        model = train.load_model(args.model)
    summary, tensors = analysis.analyse(model, cfg)
    write_json(args.out, summary)
    save_tensors(args.tensors, tensors)
    lab, neu = summary["labels"], summary["neurons"]
    log(f"held-out accuracy {lab['accuracy_test']:.4f}; error rate near curved "
        f"boundaries {lab['error_rate_near_curved']} vs elsewhere {lab['error_rate_elsewhere']}; "
        f"four neurons agree {neu['agreement_four']}")


if __name__ == "__main__":
    run(main)
