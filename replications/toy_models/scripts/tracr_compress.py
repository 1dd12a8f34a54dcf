"""Learn a shared residual compression matrix W for every width in the sweep, for one program.

Inputs: a model directory written by tracr_compile (--model-dir; needs model.safetensors,
model.json, domain.safetensors). Outputs: results JSON (--out: accuracy, loss and singular
values per width, uncompressed accuracy, training history, summary) and the learned matrices
(--weights, safetensors, one tensor `W_<width>` [d_model, width] per width).
"""

from __future__ import annotations

import time

from replications.toy_models.scripts._common import open_inputs, parser
from shared.cli import add_paths, fail, run
from shared.config import config_hash
from shared.io import save_tensors, write_json


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0], training=True)
    p.add_argument("--program", required=True)
    add_paths(p, "model_dir", out="results (.json)", weights="learned W per width (.safetensors)")
    args, cfg, _ = open_inputs(p, argv)
    import dataclasses

    from replications.toy_models.tracr_compression import summarise, train_compression
    from replications.toy_models.tracr_models import Domain, load_converted

    ccfg = cfg.compression
    if args.program not in ccfg.programs:
        fail(f"tracr_compress: {args.program!r} is not in compression.programs "
             f"{list(ccfg.programs)} of profile {args.profile}")
    model, info = load_converted(args.model_dir)
    if info.program != args.program:
        fail(f"tracr_compress: {args.model_dir} holds {info.program}, not {args.program}")
    domain = Domain.load(args.model_dir / "domain.safetensors")
    start = time.perf_counter()
    comp, result = train_compression(
        model, info, domain, ccfg, cfg.seed,
        checkpoint_path=args.checkpoint_dir / f"tracr_compress_{info.program}.safetensors",
        fingerprint=f"{config_hash(ccfg)}/{info.program}/{info.d_model}/{cfg.seed}",
        desc=f"compress {info.program}",
    )
    summary = summarise(info.program, info.d_model, info.categorical, result, ccfg)
    save_tensors(args.weights, {f"W_{w}": W.detach() for w, W in zip(comp.widths, comp.W)})
    write_json(args.out, {
        "program": info.program, "d_model": info.d_model, "categorical": info.categorical,
        "residual_labels": list(info.residual_labels), "output_variable": info.output_variable,
        "n_output_dims": sum(v == info.output_variable for v in info.residual_variables),
        "summary": summary,
        **dataclasses.asdict(result),
    })
    acc = ", ".join(f"{w}:{a:.2f}" for w, a in zip(result.widths, result.accuracy))
    print(f"[tracr_compress] {info.program} (d_model {info.d_model}) accuracy by width: {acc} "
          f"({time.perf_counter() - start:.1f}s)")


if __name__ == "__main__":
    run(main)
