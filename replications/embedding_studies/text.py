"""The text the residual-stream and word studies read: stand-in validation rows, or a data set
by name packed into BOS-first rows with the model's tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from replications.embedding_studies.config import TextConfig
from shared.config import ConfigError, check


def text_rows(cfg: TextConfig, tokens_file: Path | None, tokenizer: Any
              ) -> Int[Tensor, "rows row_len"]:
    """`n_rows` rows of `row_len` tokens. With `tokens_file` (stand-in profiles): a seeded choice
    of its validation rows (prose only: the steering stand-in's synthetic topic documents are in
    its training split), in row order. Without: the first rows of `cfg.dataset`."""
    if tokens_file is None:
        from shared.token_data import load_token_dataset

        if tokenizer is None:
            raise ConfigError(f"the model has no tokenizer to tokenize {cfg.dataset} with")
        return load_token_dataset(cfg.dataset, cfg.n_rows, cfg.row_len, tokenizer=tokenizer)
    from shared.tokenizer import load_rows

    val = load_rows(tokens_file).val
    have_rows, have_len = val.shape
    check(have_len >= cfg.row_len and have_rows >= cfg.n_rows,
          f"{tokens_file}: {have_rows} validation rows of {have_len} tokens; text wants "
          f"{cfg.n_rows} of {cfg.row_len}")
    order = torch.randperm(have_rows, generator=torch.Generator().manual_seed(cfg.seed))
    keep = order[: cfg.n_rows].sort().values
    return val[keep][:, : cfg.row_len].contiguous()
