"""Argument parsing, setup and data loading shared by the steering scripts."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from jaxtyping import Int
from torch import Tensor

from replications.steering.config import WRITEUP, Config, load
from shared.cli import load_and_setup, parse_and_setup, script_parser, user_errors
from shared.config import ConfigError, config_hash
from shared.figures import Provenance
from shared.io import load_tensors, read_json


def parser(description: str, model: bool = True, tokens: bool = True) -> argparse.ArgumentParser:
    p = script_parser(description)
    if model:
        p.add_argument("--model", required=True,
                       help="stand-in LM directory or a pretrained name (gpt2-xl)")
    if tokens:
        p.add_argument("--tokens", type=Path, required=True,
                       help="tokens.safetensors with train / val rows")
    return p


def setup(profile: str, threads: int, seed: int = 0) -> Config:
    """The profile's validated configuration (one-line error), seeds and threads."""
    return load_and_setup(load, profile, threads, seed)


def open_inputs(p: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, Config, Any, Rows | None]:
    """Every model script's start: the arguments, the profile's configuration (seeds, threads),
    the model and, when the parser takes --tokens, the token rows (user errors: one line)."""
    args, cfg = parse_and_setup(p, argv, setup)
    with user_errors():
        model = load_lm(args.model, cfg.model.device)
        rows = load_rows(args.tokens, cfg) if getattr(args, "tokens", None) else None
    return args, cfg, model, rows


def load_vectors(path: Path) -> tuple[dict[str, Tensor], dict]:
    """The steer_vectors outputs: the vectors and their analysis."""
    with user_errors():
        return load_tensors(path / "vectors.safetensors"), read_json(path / "analysis.json")


def load_lm(spec: str | Path, device: str) -> Any:
    """The LM with TransformerLens's usual weight processing (as ActAdd's `from_pretrained`)."""
    from shared.lm import load_model

    return load_model(spec, device, processed=True, frozen=True, need_tokenizer=True)


@dataclasses.dataclass(frozen=True)
class Rows:
    """The token rows of every use, from one tokens file."""

    sae_train: Int[Tensor, "rows sae_seq"]
    sae_eval: Int[Tensor, "rows seq"]
    loss: Int[Tensor, "rows seq"]
    profile: Int[Tensor, "rows sae_seq"]
    sha256: str


def load_rows(path: Path, cfg: Config) -> Rows:
    """SAE training rows (train split), held-out rows split into SAE evaluation and spliced
    loss (val split), and the first training rows for feature labels."""
    from shared.sae_zoo import select_rows
    from shared.tokenizer import load_rows as load_token_rows

    rows = load_token_rows(path)
    # The SAE's rows, as the model zoo's SAE rule reads them (and their checks).
    train, sae_eval = select_rows(rows, cfg.sae_rows(), cfg.sae_run.rows_per_batch, str(path))
    d = cfg.data
    have = {"heldout_rows": rows.val.shape[0], "profile_rows": rows.train.shape[0]}
    short = [f"data.{k} wants {getattr(d, k)}, it has {n}" for k, n in have.items()
             if n < getattr(d, k)]
    if short:
        raise ConfigError(f"{path}: too few rows: {'; '.join(short)}")
    loss = rows.val[d.sae_eval_rows:d.sae_eval_rows + d.loss_rows]
    return Rows(train, sae_eval, loss, train[: d.profile_rows], rows.sha256)


def provenance(profile: str, cfg: Any) -> Provenance:
    return Provenance.make(WRITEUP, profile, config_hash(cfg))
