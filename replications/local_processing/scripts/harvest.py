"""Harvest centred cosines between full-context and truncated-context residuals.

    python -m replications.local_processing.scripts.harvest --profile P --model SPEC
        [--tokens FILE] --out-dir DIR [--threads N]

SPEC is the fact-finding stand-in's directory (smoke, default; then --tokens is its
tokens.safetensors and the prompts are validation rows) or a model name (paper:
EleutherAI/pythia-2.8b; the prompts are NeelNanda/pile-10k by name, tokenized with the model's
tokenizer). Writes --out-dir/harvest.safetensors (cosines [tokens, contexts, layers], the
random-pair baseline, token ids, categories, prompt and position of each token) and
harvest.json (sizes, settings, decoded token strings).
"""

from __future__ import annotations

from pathlib import Path

import torch

from replications.local_processing import harvest, prompts
from replications.local_processing.scripts._common import setup
from shared.cli import add_paths, log, parse_and_setup, run, script_parser, user_errors
from shared.config import ConfigError
from shared.lm import describe_model, load_model


def main(argv: list[str] | None = None) -> None:
    p = script_parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True,
                   help="stand-in LM directory or a pretrained name (EleutherAI/pythia-2.8b)")
    p.add_argument("--tokens", type=Path,
                   help="the stand-in's tokens.safetensors (stand-in profiles only)")
    add_paths(p, "out_dir")
    args, cfg = parse_and_setup(p, argv, setup)
    stand_in = cfg.data.source == "stand_in"
    with user_errors():
        if stand_in != (args.tokens is not None):
            raise ConfigError("--tokens is needed with data.source stand_in and only then "
                              f"(profile {args.profile}: {cfg.data.source})")
        rows = prompts.stand_in_prompts(args.tokens, cfg.data) if stand_in else None
        model = load_model(args.model, cfg.harvest.device, processed=True, frozen=True)
        if rows is None:
            rows = prompts.paper_prompts(cfg.data, model.tokenizer)
    if cfg.harvest.precision == "bf16":
        model = model.to(torch.bfloat16)
    log(f"{args.model}: {describe_model(model)}; {rows.shape[0]} prompts x "
        f"{rows.shape[1]} tokens")
    result, timing = harvest.run(model, rows, cfg, str(args.model))
    result.save(args.out_dir)
    t = timing.summary()
    log(f"{len(result.token)} tokens x {len(result.contexts)} contexts x "
        f"{result.n_layers} layers in {t['seconds']:.1f} s ({t['samples_per_s']:.0f} sampled "
        f"tokens/s, {t['positions_per_s']:.0f} positions/s; layout {cfg.harvest.layout}) "
        f"-> {args.out_dir}")


if __name__ == "__main__":
    run(main)
