"""Setup shared by the embedding-studies scripts: configuration, model, text rows."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from replications.embedding_studies.config import Config, load
from shared.cli import load_and_setup, user_errors
from shared.config import ConfigError


def setup(profile: str, threads: int) -> Config:
    """The profile's validated configuration (one-line error); threads. Every stage draws
    from its own section's seeded generators, so the global seed is fixed at 0 (reading a
    section's seed here would make every rule declare that section)."""
    return load_and_setup(load, profile, threads, 0)


def add_model_args(p: argparse.ArgumentParser, tokens: bool = True) -> argparse.ArgumentParser:
    p.add_argument("--model", required=True,
                   help="the stand-in LM's directory or a pretrained name (gpt2, "
                        "EleutherAI/gpt-neo-125M)")
    if tokens:
        p.add_argument("--tokens", type=Path,
                       help="the stand-in's tokens.safetensors (stand-in profiles only)")
    p.add_argument("--out-dir", type=Path, required=True)
    return p


def _stand_in_label(model: Any) -> str:
    """Figure label of the zoo stand-in: GPT-2's shape, and its local layers where it has any
    (the steering stand-in's first layers attend locally, as GPT-Neo's do)."""
    local = [i for i, kind in enumerate(model.cfg.attn_types or []) if kind == "local"]
    if not local:
        return "GPT-2-shaped stand-in"
    layers = f"layer {local[0]}" if len(local) == 1 else f"layers {local[0]}-{local[-1]}"
    return f"stand-in ({layers} local)"


def model_and_rows(stage: str, args: argparse.Namespace, cfg: Config, rows: bool = True
                   ) -> tuple[Any, Any, str]:
    """The model (TransformerLens, default weight processing, frozen), the text rows (or
    None), and a label for figures; every input error is one `error:` line."""
    from replications.embedding_studies.text import text_rows
    from shared.lm import describe_model, load_model

    stand_in = cfg.model.source == "stand_in"
    with user_errors():
        tokens = getattr(args, "tokens", None)
        if rows and stand_in != (tokens is not None):
            raise ConfigError("--tokens is needed with model.source stand_in and only then "
                              f"(profile {args.profile}: {cfg.model.source})")
        model = load_model(args.model, cfg.model.device, processed=True, frozen=True,
                           need_tokenizer=True)
        text = text_rows(cfg.text, tokens, model.tokenizer) if rows else None
    label = _stand_in_label(model) if stand_in else str(args.model)
    print(f"[{stage}] {args.model}: {describe_model(model)}", file=sys.stderr)
    return model, text, label


def save_stage(stage: str, out_dir: Path, out: dict[str, Any], line: str,
               tensors: dict[str, Any] | None = None) -> None:
    """The stage's JSON (and tensors) in `out_dir`, and its one summary line on stderr."""
    from shared.io import save_tensors, write_json

    write_json(out_dir / f"{stage}.json", out)
    if tensors is not None:
        save_tensors(out_dir / f"{stage}.safetensors", tensors)
    print(f"[{stage}] {line} -> {out_dir}", file=sys.stderr)


# A stage: (model, text rows or None, configuration, model label) -> (JSON, tensors or None).
Stage = Callable[[Any, Any, Config, str], tuple[dict[str, Any], dict[str, Any] | None]]


def stage_main(stage: str, doc: str, argv: list[str] | None, compute: Stage,
               describe: Callable[[dict[str, Any]], str], rows: bool = True) -> None:
    """A stage script: parse --profile/--model[/--tokens]/--out-dir, load the model (and text
    rows), run `compute` (its input errors are one `error:` line), save, one summary line."""
    from shared.cli import parse_and_setup, script_parser

    p = add_model_args(script_parser(doc.splitlines()[0]), tokens=rows)
    args, cfg = parse_and_setup(p, argv, setup)
    model, text, label = model_and_rows(stage, args, cfg, rows=rows)
    with user_errors():
        out, tensors = compute(model, text, cfg, label)
    save_stage(stage, args.out_dir, out, describe(out), tensors)
