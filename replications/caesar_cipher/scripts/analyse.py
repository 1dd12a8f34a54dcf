"""Analyse the trained models: accuracy by position for every mode; the circuit analyses
(position 0, attention, layer-1 OV, preferences, DLA, compensation) for easy and medium.

    python -m replications.caesar_cipher.scripts.analyse --profile P --models M1 [M2 ...]
        --out ANALYSIS.json --tensors TENSORS.safetensors [--threads N]

Writes the summary that `caesar_metrics` puts under `analysis` in metrics.json and the tensors
the figures draw (keys prefixed by mode).
"""

from __future__ import annotations

from pathlib import Path

from replications.caesar_cipher import analysis, train
from replications.caesar_cipher.scripts._common import setup
from shared.cli import add_paths, log, parse_and_setup, run, script_parser, user_errors
from shared.io import save_tensors, write_json


def main(argv: list[str] | None = None) -> None:
    p = script_parser(__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, nargs="+", required=True)
    add_paths(p, "out", "tensors")
    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        loaded = [train.load_model(path) for path in args.models]
    summary: dict = {"modes": {}}
    tensors = {}
    for model, mode in loaded:
        md = train.mode_data(cfg, mode)
        s, t = analysis.analyse(model, md, cfg.analysis.n_eval,
                                mode in cfg.analysis.circuit_modes, cfg.analysis.dla_position)
        summary["modes"][mode] = s
        tensors.update({f"{mode}.{k}": v for k, v in t.items()})
        if mode == "easy" or mode == "medium":
            summary["modes"][mode]["words"] = list(md.words.words)
        acc = s["accuracy"]
        log(f"{mode}: mean P(correct) {acc['mean_prob_correct']:.3f}, accuracy "
            f"pos 0 {acc['accuracy_pos0']:.3f}, last {acc['accuracy_last']:.3f}")
    modes = summary["modes"]
    if "easy" in modes and "medium" in modes:
        summary["easy_minus_medium_prob"] = (modes["easy"]["accuracy"]["mean_prob_correct"]
                                             - modes["medium"]["accuracy"]["mean_prob_correct"])
    if "medium" in modes and "hard" in modes:
        summary["medium_minus_hard_prob"] = (modes["medium"]["accuracy"]["mean_prob_correct"]
                                             - modes["hard"]["accuracy"]["mean_prob_correct"])
    write_json(args.out, summary)
    save_tensors(args.tensors, tensors)


if __name__ == "__main__":
    run(main)
