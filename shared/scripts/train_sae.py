"""The model zoo's SAE (DAG rule zoo_sae): train it on a language model, or load a SAELens
directory; evaluate it; write its zoo folder. Resumable.

    python -m shared.scripts.train_sae (--config JSON | --config-json FILE) [--writeup W --profile P]
        --model SPEC --tokens FILE --out-dir DIR --checkpoint-dir DIR [--threads N]

The settings are a `shared.sae_zoo.ZooSAEConfig` ({"sae", "run", "site", "rows",
"evaluation"}; shared/zoo.smk passes the owner write-up's). --model is a stand-in's folder or a
published name (`shared.lm.load_model`); --tokens a tokens file with train and val rows.
`run.source: train` trains `sae` on the training rows (resumable from --checkpoint-dir);
`load` reads `run.load_dir` (SAELens format). Either way the SAE is evaluated on the held-out
rows and --out-dir gets the SAELens directory (cfg.json, sae_weights.safetensors,
sparsity.safetensors) with frequency.safetensors, history.json (empty when loaded) and
eval.json (ce_clean, ce_sae, loss recovered, L0, dense share): what
`shared.sae_io.load_sae(out_dir)` reads.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from shared import sae_zoo
from shared.cli import log, run, user_errors
from shared.lm import load_model
from shared.runtime import seed_everything, set_threads
from shared.scripts.common import add_config_args, resolve_config
from shared.tokenizer import load_rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_args(parser, "zoo SAE")
    parser.add_argument("--model", required=True, help="a stand-in's folder or a published name")
    parser.add_argument("--tokens", type=Path, required=True, help="tokens.safetensors")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--checkpoint-dir", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    with user_errors():
        cfg = resolve_config(args, sae_zoo.ZooSAEConfig)
    set_threads(args.threads)
    seed_everything(cfg.sae.seed)
    with user_errors():
        model = load_model(args.model, cfg.site.device, processed=True, frozen=True)
        rows = load_rows(args.tokens)
    args.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    got = sae_zoo.obtain(cfg, model, rows, args.checkpoint_dir / "sae.safetensors",
                         where=str(args.tokens), desc=f"{args.writeup}:sae")
    seconds = time.perf_counter() - t0
    sae_zoo.save(args.out_dir, cfg, got)
    m = got.metrics
    log(f"{cfg.run.source} in {seconds:.0f} s: L0 {m['l0']:.1f}, CE "
        f"{m['ce_clean']:.3f} -> {m['ce_sae']:.3f} spliced (zero ablation "
        f"{m['ce_zero_ablation']:.3f}, recovered {m['loss_recovered']:.3f}), "
        f"dead {m['dead_fraction']:.3f}, dense {m['n_dense']:.0f} -> {args.out_dir}",)


if __name__ == "__main__":
    run(main)
