"""Paper profile: the SAE training and evaluation rows from the tokenized data set, by name.

    python -m replications.monosemanticity.scripts.paper_data --profile paper --out FILE

`model.dataset` (NeelNanda/c4-code-tokenized-2b: 1,657,102 rows of 1024 tokens) is prepared as
the reference code does: each row cut into eight 128-token rows, the first token of each
replaced by the model's BOS, all rows shuffled (`model.data_seed`). The first
`model.eval_rows` are held out (`val`); the rest (or the first `model.train_rows`) are the SAE
training rows (`train`). Written as `shared.tokenizer.load_rows` reads it (int32 `train`,
`val`, and the special-token ids), so the SAE scripts treat both profiles alike. About 6.8 GB
for the whole data set.
"""

from __future__ import annotations

import time

import torch

from replications.monosemanticity import training
from replications.monosemanticity.scripts._common import parser, setup
from shared.cli import add_paths, fail, log, parse_and_setup, run, user_errors
from shared.config import ConfigError
from shared.io import save_tensors


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0], model=False), out="tokens.safetensors")
    args, cfg = parse_and_setup(p, argv, setup)
    m = cfg.model
    if m.source != "pretrained":
        fail(ConfigError(f"profile {args.profile}: model.source is {m.source}, not pretrained"))
    t0 = time.perf_counter()
    tokenizer = training.load_lm(m.name, "cpu").tokenizer
    bos = tokenizer.bos_token_id
    if bos is None:
        fail(ConfigError(f"{m.name}: its tokenizer has no BOS token to put first in each row"))
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else bos
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    per_row = m.dataset_row_len // m.seq_len
    # Data-set rows needed (0 = all): held-out + training rows, rounded up.
    n_rows = 0 if m.train_rows == 0 else -(-(m.eval_rows + m.train_rows) // per_row)
    with user_errors():
        rows = training.paper_token_rows(m.dataset, m.dataset_row_len, m.seq_len, bos, n_rows,
                                     m.data_seed)
    if rows.shape[0] <= m.eval_rows:
        fail(ConfigError(f"{m.dataset}: {rows.shape[0]} rows, model.eval_rows wants more"))
    val, train = rows[: m.eval_rows], rows[m.eval_rows:]
    if m.train_rows:
        train = train[: m.train_rows]
    ids = {"bos_id": bos, "eos_id": eos, "pad_id": pad, "vocab_size": len(tokenizer)}
    save_tensors(args.out, {"train": train.contiguous(), "val": val.contiguous(),
                            **{k: torch.tensor(int(v), dtype=torch.int64) for k, v in ids.items()}})
    log(f"{m.dataset}: {train.shape[0]:,} training and {val.shape[0]:,} held-out "
        f"rows of {m.seq_len} in {time.perf_counter() - t0:.0f} s -> {args.out}")


if __name__ == "__main__":
    run(main)
