"""The prompts whose tokens are sampled: stand-in validation rows, or Pile text by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from replications.local_processing.config import DataConfig
from shared.config import ConfigError, check


def stand_in_prompts(tokens_file: Path, cfg: DataConfig) -> Int[Tensor, "prompts prompt_len"]:
    """`n_prompts` validation rows (seeded choice, kept in row order), cut to `prompt_len`.

    Validation rows only: the fact-finding stand-in's training split also holds its synthetic
    fact documents, the validation split ordinary prose and code.
    """
    from shared.tokenizer import load_rows

    val = load_rows(tokens_file).val
    check(val.shape[1] >= cfg.prompt_len,
          f"{tokens_file}: rows of {val.shape[1]} tokens, data.prompt_len wants {cfg.prompt_len}")
    check(val.shape[0] >= cfg.n_prompts,
          f"{tokens_file}: {val.shape[0]} validation rows, data.n_prompts wants {cfg.n_prompts}")
    gen = torch.Generator().manual_seed(cfg.seed)
    pick = torch.randperm(val.shape[0], generator=gen)[: cfg.n_prompts].sort().values
    return val[pick, : cfg.prompt_len].contiguous()


def paper_prompts(cfg: DataConfig, tokenizer: Any) -> Int[Tensor, "prompts prompt_len"]:
    """The first `n_prompts` rows of the data set (Pile text packed into BOS-first rows)."""
    from shared.token_data import load_token_dataset

    if tokenizer is None:
        raise ConfigError(f"the model has no tokenizer to tokenize {cfg.dataset} with")
    return load_token_dataset(cfg.dataset, cfg.n_prompts, cfg.prompt_len, tokenizer=tokenizer)


def bos_of(rows: Int[Tensor, "prompts seq"], d_vocab: int) -> int:
    """The BOS id every row starts with (the truncated prompts get the same one)."""
    bos = int(rows[0, 0])
    check(bool((rows[:, 0] == bos).all()), "prompt rows do not all start with the same BOS")
    check(int(rows.max()) < d_vocab and int(rows.min()) >= 0,
          f"token ids outside the model's vocabulary of {d_vocab}")
    return bos
