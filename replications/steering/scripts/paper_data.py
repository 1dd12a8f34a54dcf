"""Paper data: a tokenized pretraining set by name, as SAE training rows and held-out rows.

    python -m replications.steering.scripts.paper_data --profile paper --out FILE

Reads the first `data.sae_train_rows + data.heldout_rows` rows of `data.dataset` (rows of
`dataset_row_len` GPT-2 tokens). The training rows are cut into rows of `sae_seq_len` with BOS
first (the SAE's training contexts); the held-out rows keep all their tokens (1024, GPT-2 XL's
context: the write-up's spliced-loss text) with BOS first. Written in the layout of
`shared.tokenizer` (`train`, `val`, `bos_id`, `eos_id`, `pad_id`, `vocab_size`).
"""

from __future__ import annotations

import sys

import einops
import torch

from replications.steering.scripts._common import parser, setup
from shared.cli import add_paths, fail, parse_and_setup, run
from shared.io import save_tensors


def main(argv: list[str] | None = None) -> None:
    p = add_paths(parser(__doc__.splitlines()[0], model=False, tokens=False), "out")
    args, cfg = parse_and_setup(p, argv, setup)
    if cfg.model.source != "pretrained":
        fail("paper_data is for model.source: pretrained")
    from transformer_lens.loading_from_pretrained import get_official_model_name
    from transformers import AutoTokenizer

    from shared.token_data import load_token_dataset

    d = cfg.data
    tok = AutoTokenizer.from_pretrained(get_official_model_name(cfg.model.name))
    bos = tok.bos_token_id
    rows = load_token_dataset(d.dataset, d.sae_train_rows + d.heldout_rows, d.dataset_row_len)
    train = einops.rearrange(rows[: d.sae_train_rows], "r (k s) -> (r k) s", s=d.sae_seq_len)
    train = train.clone()
    train[:, 0] = bos
    val = rows[d.sae_train_rows:].clone()
    val[:, 0] = bos
    ids = {"bos_id": bos, "eos_id": tok.eos_token_id,
           "pad_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
           "vocab_size": len(tok)}
    save_tensors(args.out, {"train": train.int(), "val": val.int(),
                            **{k: torch.tensor(v, dtype=torch.int64) for k, v in ids.items()}})
    print(f"paper data: {train.shape[0]} training rows of {d.sae_seq_len}, {val.shape[0]} "
          f"held-out rows of {d.dataset_row_len} from {d.dataset} -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
