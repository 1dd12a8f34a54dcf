"""Spliced LM loss of every steering condition on held-out pretraining text.

    python -m replications.steering.scripts.spliced_loss --profile P --model SPEC
        --tokens FILE --vectors DIR --out FILE.json [--threads N]

Each condition's vector is added at the front positions of each held-out row (the
`data.loss_rows` rows after the SAE's evaluation rows); the loss counts only the predictions
made after the steered positions. No sampling. Writes per experiment and condition the mean
loss and its standard error over rows.
"""

from __future__ import annotations

import time

from replications.steering.evaluation import spliced_loss
from replications.steering.scripts._common import (
    load_vectors,
    open_inputs,
    parser,
)
from shared.cli import add_paths, log, run
from shared.io import write_json


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0]), vectors="the steer_vectors directory", out=None)
    args, cfg, model, rows = open_inputs(p, argv)
    tensors, analysis = load_vectors(args.vectors)
    out, t0 = {}, time.perf_counter()
    for name in ("anger", "weddings"):
        losses = spliced_loss(model, rows.loss, tensors[f"{name}/vectors"], cfg.model.layer,
                              cfg.loss.batch_rows)
        mean = losses.mean(1)
        sem = losses.std(1) / losses.shape[1] ** 0.5
        out[name] = {"n_rows": rows.loss.shape[0], "tokens_per_row": rows.loss.shape[1],
                     "conditions": [{**c, "loss": float(m), "loss_sem": float(e)} for c, m, e
                                    in zip(analysis[name]["conditions"], mean, sem)]}
    write_json(args.out, out)
    log(f"clean {out['anger']['conditions'][0]['loss']:.3f} on "
        f"{rows.loss.shape[0]} x {rows.loss.shape[1]} tokens, "
        f"{time.perf_counter() - t0:.1f} s -> {args.out}")


if __name__ == "__main__":
    run(main)
