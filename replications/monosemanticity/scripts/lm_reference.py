"""Paper profile: the pretrained LM's loss on the held-out rows (it is not trained here).

    python -m replications.monosemanticity.scripts.lm_reference --profile paper --model NAME
        --tokens FILE --out JSON --figure PNG

The `lm_loss` figure of the stand-in profiles is the training curve; for a pretrained model it
is the next-token loss by position over the first `model.loss_eval_rows` held-out rows.
Writes {"final": {"val_loss": ...}, "by_position": [...]} and the figure (PNG + PDF).
"""

from __future__ import annotations

import torch

from replications.monosemanticity import plots
from replications.monosemanticity.scripts._common import open_inputs, parser
from shared.cli import add_paths, log, run
from shared.config import config_hash
from shared.figures import Provenance, save_figure
from shared.io import write_json


@torch.no_grad()
def loss_by_position(model, rows: torch.Tensor, batch_rows: int) -> torch.Tensor:
    total = torch.zeros(rows.shape[1] - 1, dtype=torch.float64)
    device = next(model.parameters()).device
    for start in range(0, rows.shape[0], batch_rows):
        batch = rows[start:start + batch_rows].to(device)
        total += model(batch, return_type="loss", loss_per_token=True).double().sum(0).cpu()
    return total / rows.shape[0]


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0]), "out", "figure")
    args, cfg, model, tokens = open_inputs(p, argv)
    by_pos = loss_by_position(model, tokens.eval[: cfg.model.loss_eval_rows],
                              cfg.train.eval_batch_rows)
    mean = float(by_pos.mean())
    write_json(args.out, {"final": {"val_loss": mean}, "by_position": by_pos.tolist(),
                          "model": str(args.model)})
    save_figure(plots.plot_lm_reference(by_pos, str(args.model), mean), args.figure,
                Provenance.make("monosemanticity", args.profile, config_hash(cfg)))
    log(f"{args.model}: mean next-token loss {mean:.4f} -> {args.out}")


if __name__ == "__main__":
    run(main)
