"""Compile one RASP program with tracr, convert it to a HookedTransformer, check it on every input.

Outputs, in --out-dir: `model.safetensors` (state dict), `model.json` (HookedTransformerConfig
fields, residual labels and variables, input/output encodings, equality-check summary) and
`domain.safetensors` (every input of the domain with the RASP program's true outputs). A
converted model that disagrees with tracr's own model is still written, with a warning: its
agreement with the RASP program is a claim of the scorecard, which then fails instead of the
pipeline stopping.
"""

from __future__ import annotations

import time

from replications.toy_models.scripts._common import open_inputs, parser
from shared.cli import add_paths, fail, log, run


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0], training=False)
    p.add_argument("--program", required=True, help="library program (reverse, sort, ...)")
    add_paths(p, "out_dir")
    args, cfg, _ = open_inputs(p, argv)
    # Imported after the config so a bad profile fails before jax loads.
    from replications.toy_models.tracr_check import compile_and_convert
    from replications.toy_models.tracr_models import describe, save_converted

    if args.program not in cfg.tracr.programs:
        fail(f"tracr_compile: program {args.program!r} is not in tracr.programs "
             f"{list(cfg.tracr.programs)} of profile {args.profile}")
    start = time.perf_counter()
    model, info, domain = compile_and_convert(args.program, cfg.tracr)
    log(f"{describe(info)} ({time.perf_counter() - start:.1f}s)")
    if not info.check["passed"]:
        log(f"WARNING: converted {args.program} disagrees with tracr: {info.check}")
    save_converted(args.out_dir, model, info)
    domain.save(args.out_dir / "domain.safetensors")


if __name__ == "__main__":
    run(main)
