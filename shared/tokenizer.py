"""Byte-level BPE tokenizer trained on the local corpus, and the corpus as fixed-length rows.

Like `NeelNanda/c4-code-tokenized-2b` (gelu-1l's training data), documents are tokenized,
joined with an end-of-text token, cut into rows of `seq_len - 1` tokens and given a BOS token
first, so every row is `seq_len` long and starts with BOS. gelu-1l's tokenizer splits digits
one by one (`gpt-neox-tokenizer-digits`); `split_digits` mirrors that.

Outputs of `train_and_tokenize` in one directory: `tokenizer.json` (plus the Hugging Face
wrapper files `tokenizer_config.json` / `special_tokens_map.json`, so `AutoTokenizer` and
TransformerLens can load it), `tokens.safetensors` (int32 tensors `train` and `val`
[rows, seq_len] plus scalar `bos_id`, `eos_id`, `pad_id`, `vocab_size`) and `manifest.json`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from shared.config import check, config_hash, to_dict
from shared.corpus import DOC_SEPARATOR, read_documents
from shared.io import load_tensors, read_json, save_tensors, sha256_file, write_json

BOS = "<|bos|>"
EOS = DOC_SEPARATOR  # "<|endoftext|>", as in GPT-2
PAD = "<|pad|>"
SPECIAL_TOKENS: tuple[str, ...] = (BOS, EOS, PAD)  # ids 0, 1, 2


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    """BPE vocabulary and row layout."""

    vocab_size: int  # including the 256 byte tokens and the special tokens
    min_frequency: int  # a pair must occur this often to be merged
    split_digits: bool  # one token per digit, as gelu-1l's tokenizer
    train_bytes: int  # learn merges on (at most) the first this-many bytes of the train split
    seq_len: int  # tokens per row, BOS included (128 in c4-code-tokenized-2b)

    def __post_init__(self) -> None:
        check(self.vocab_size >= 256 + len(SPECIAL_TOKENS) + 1,
              "tokenizer.vocab_size must exceed 259 (bytes + special tokens)")
        check(self.min_frequency >= 1, "tokenizer.min_frequency must be at least 1")
        check(self.train_bytes > 0, "tokenizer.train_bytes must be positive")
        check(self.seq_len >= 2, "tokenizer.seq_len must be at least 2 (BOS + one token)")


def _untrained(split_digits: bool):  # noqa: ANN202 (a tokenizers.Tokenizer)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if split_digits:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(docs: Sequence[str], cfg: TokenizerConfig):  # noqa: ANN201
    """Learn a byte-level BPE on `docs` (the first `cfg.train_bytes` bytes of them).

    Deterministic: the same documents in the same order give the same merges.
    """
    from tokenizers import pre_tokenizers, trainers

    taken, size = [], 0
    for doc in docs:
        if size >= cfg.train_bytes:
            break
        taken.append(doc)
        size += len(doc.encode("utf-8"))
    tok = _untrained(cfg.split_digits)
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        # All 256 bytes from the start, so any text (any code point) is encodable.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(taken, trainer=trainer, length=len(taken))
    for i, special in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(special) == i, f"special token {special} should have id {i}"
    return tok


def hf_tokenizer(tok):  # noqa: ANN001, ANN201
    """Wrap a `tokenizers.Tokenizer` as a transformers fast tokenizer with BOS/EOS/PAD set."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        unk_token=None, model_max_length=10**9,
    )


def save_tokenizer(tok, out_dir: Path) -> Path:  # noqa: ANN001
    """Write `tokenizer.json` and the Hugging Face wrapper files into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_tokenizer(tok).save_pretrained(str(out_dir))
    tok.save(str(out_dir / "tokenizer.json"))
    return out_dir / "tokenizer.json"


def load_tokenizer(path: Path):  # noqa: ANN201
    """A `tokenizers.Tokenizer` from `tokenizer.json` (or the directory holding it)."""
    from tokenizers import Tokenizer

    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing tokenizer (run the train_tokenizer rule first)")
    return Tokenizer.from_file(str(path))


def pack_rows(
    token_lists: Sequence[Sequence[int]] | Sequence[np.ndarray], seq_len: int, bos_id: int,
    eos_id: int,
) -> Int[Tensor, "rows seq_len"]:
    """Concatenate documents (each followed by EOS), cut into rows of seq_len - 1 tokens and
    put BOS first. The incomplete last row is dropped."""
    if not token_lists:
        return torch.zeros(0, seq_len, dtype=torch.int32)
    eos = np.array([eos_id], dtype=np.int32)
    stream = np.concatenate(
        [part for ids in token_lists for part in (np.asarray(ids, dtype=np.int32), eos)]
    )
    body = seq_len - 1
    n_rows = len(stream) // body
    rows = np.empty((n_rows, seq_len), dtype=np.int32)
    rows[:, 0] = bos_id
    rows[:, 1:] = stream[: n_rows * body].reshape(n_rows, body)
    return torch.from_numpy(rows)


def encode_documents(
    tok, docs: Sequence[str], batch: int = 2048  # noqa: ANN001
) -> list[np.ndarray]:
    """Token ids of each document (no special tokens), batch-encoded in parallel."""
    out: list[np.ndarray] = []
    for start in range(0, len(docs), batch):
        encodings = tok.encode_batch(list(docs[start:start + batch]), add_special_tokens=False)
        out += [np.asarray(e.ids, dtype=np.int32) for e in encodings]
    return out


def train_and_tokenize(
    cfg: TokenizerConfig, corpus_dir: Path, out_dir: Path, label: str = ""
) -> dict:
    """Train the tokenizer on `corpus_dir/train.txt`, tokenize both splits into rows, write
    everything into `out_dir`, and check the token rows against env/corpus.lock when this
    build is locked; returns the manifest."""
    from shared import corpus_lock

    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    train_docs = read_documents(corpus_dir / "train.txt")
    val_docs = read_documents(corpus_dir / "val.txt")
    tok = train_tokenizer(train_docs, cfg)
    tok_path = save_tokenizer(tok, out_dir)
    bos, eos, pad = (tok.token_to_id(t) for t in SPECIAL_TOKENS)
    rows = {
        split: pack_rows(encode_documents(tok, docs), cfg.seq_len, bos, eos)
        for split, docs in (("train", train_docs), ("val", val_docs))
    }
    tok_sha = sha256_file(tok_path)
    # Ids as scalar tensors, not safetensors metadata: metadata with several keys is written
    # in a varying order, and the file should be byte-identical when rebuilt.
    ids = {"bos_id": bos, "eos_id": eos, "pad_id": pad, "vocab_size": tok.get_vocab_size()}
    save_tensors(out_dir / "tokens.safetensors",
                 {**rows, **{k: torch.tensor(v, dtype=torch.int64) for k, v in ids.items()}})
    manifest = {
        "config": to_dict(cfg),
        "config_hash": config_hash(cfg),
        "vocab_size": tok.get_vocab_size(),
        "special_tokens": {t: tok.token_to_id(t) for t in SPECIAL_TOKENS},
        "rows": {split: int(r.shape[0]) for split, r in rows.items()},
        "tokens": {split: int(r.numel()) for split, r in rows.items()},
        "corpus_sha256": {s: sha256_file(corpus_dir / f"{s}.txt") for s in ("train", "val")},
        "tokenizer_sha256": tok_sha,
        "tokens_sha256": sha256_file(out_dir / "tokens.safetensors"),
    }
    corpus_manifest = corpus_dir / "manifest.json"
    if corpus_manifest.is_file():  # tests tokenize bare text files
        key = corpus_lock.tokens_key(read_json(corpus_manifest)["lock_key"], config_hash(cfg))
        manifest["lock"] = corpus_lock.check_outputs(
            key, {"tokens.safetensors": manifest["tokens_sha256"]}, label)
    write_json(out_dir / "manifest.json", manifest)
    return manifest


@dataclasses.dataclass(frozen=True)
class TokenRows:
    """Tokenized corpus splits and their special-token ids."""

    train: Int[Tensor, "rows seq_len"]
    val: Int[Tensor, "rows seq_len"]
    bos_id: int
    eos_id: int
    pad_id: int
    vocab_size: int
    sha256: str  # of the tokens file: identifies the data in checkpoint fingerprints


def load_rows(path: Path) -> TokenRows:
    """Read `tokens.safetensors` written by `train_and_tokenize`."""
    path = Path(path)
    t = load_tensors(path)  # raises a one-line error when missing
    return TokenRows(
        train=t["train"], val=t["val"], bos_id=int(t["bos_id"]), eos_id=int(t["eos_id"]),
        pad_id=int(t["pad_id"]), vocab_size=int(t["vocab_size"]), sha256=sha256_file(path),
    )


def describe(manifest: dict) -> str:
    """One line for logs."""
    return json.dumps({k: manifest[k] for k in ("vocab_size", "rows", "tokens")})
