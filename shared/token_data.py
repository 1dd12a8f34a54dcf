"""The papers' token data sets by name, streamed (`NeelNanda/c4-code-tokenized-2b` is already
tokenized; `NeelNanda/pile-10k` is raw text, tokenized here)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterator

import torch
from jaxtyping import Int
from torch import Tensor

# ---------------------------------------------------------------------------------------------
# Paper data sets


def _open_dataset(name: str, split: str, streaming: bool):  # noqa: ANN202
    import datasets

    path = Path(name)
    if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "state.json").is_file()
                          or (path / "dataset_dict.json").is_file()):
        ds = datasets.load_from_disk(str(path))  # a Dataset(Dict).save_to_disk directory
        return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    return datasets.load_dataset(name, split=split, streaming=streaming)


def iter_token_rows(
    name: str,
    seq_len: int,
    batch_rows: int,
    tokenizer: Any = None,
    split: str = "train",
    streaming: bool = True,
) -> Iterator[Int[Tensor, "batch_rows seq_len"]]:
    """Rows of `seq_len` tokens (int32) of a data set in order, `batch_rows` at a time.

    A data set with a `tokens` column (`NeelNanda/c4-code-tokenized-2b`: 128-token rows, BOS
    first) is used as it is (rows cut to `seq_len`). One with a `text` column
    (`NeelNanda/pile-10k`) is tokenized with `tokenizer` (a transformers tokenizer) and packed
    like the local corpus: documents joined by EOS, rows of `seq_len - 1` after a BOS.
    `name` may be a hub name (streamed), a local data directory or a `save_to_disk` directory.
    The last batch may be short.
    """
    examples = iter(_open_dataset(name, split, streaming))
    try:
        first = next(examples)
    except StopIteration:
        raise ValueError(f"data set {name} ({split}) is empty") from None
    if "tokens" not in first and "text" not in first:
        raise ValueError(f"data set {name}: expected a 'tokens' or 'text' column: {list(first)}")
    if "text" in first and "tokens" not in first and tokenizer is None:
        raise ValueError(f"data set {name} holds raw text: pass the model's tokenizer")
    if tokenizer is not None:
        # Tokenizers without a BOS (GPT-NeoX's uses <|endoftext|> for both) fall back to EOS.
        eos, bos = tokenizer.eos_token_id, tokenizer.bos_token_id
        eos = bos if eos is None else eos
        bos = eos if bos is None else bos
    rows: list[list[int]] = []
    stream: list[int] = []  # tokens not yet in a row, carried across documents
    pending: list[str] = []
    body = seq_len - 1

    def pack(texts: list[str]) -> None:
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
            stream.append(eos)
        full = len(stream) // body
        rows.extend([bos] + stream[i * body:(i + 1) * body] for i in range(full))
        del stream[: full * body]

    for ex in itertools.chain([first], examples):
        if "tokens" in ex:
            toks = list(ex["tokens"])
            if len(toks) < seq_len:
                raise ValueError(f"data set {name}: a row has {len(toks)} < {seq_len} tokens")
            rows.append(toks[:seq_len])
        else:
            pending.append(ex["text"])
            if len(pending) == 256:  # tokenize in batches: the fast tokenizer is parallel
                pack(pending)
                pending = []
        while len(rows) >= batch_rows:
            yield torch.tensor(rows[:batch_rows], dtype=torch.int32)
            del rows[:batch_rows]
    if pending:
        pack(pending)
    while rows:
        yield torch.tensor(rows[:batch_rows], dtype=torch.int32)
        del rows[:batch_rows]


def load_token_dataset(
    name: str,
    n_rows: int,
    seq_len: int,
    tokenizer: Any = None,
    split: str = "train",
    streaming: bool = True,
) -> Int[Tensor, "n_rows seq_len"]:
    """The first `n_rows` rows of `seq_len` tokens of a data set (see `iter_token_rows`)."""
    parts, have = [], 0
    for batch in iter_token_rows(name, seq_len, min(n_rows, 4096), tokenizer, split, streaming):
        parts.append(batch[: n_rows - have])
        have += parts[-1].shape[0]
        if have >= n_rows:
            break
    if have < n_rows:
        raise ValueError(f"data set {name} ({split}) gives {have} rows, {n_rows} wanted")
    return torch.cat(parts)

