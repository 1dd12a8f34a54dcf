"""Helpers shared by the toy-model scripts (TMS, SAE-on-TMS, Tracr): config, setup, provenance."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from shared.cli import add_paths, script_parser
from shared.config import config_hash
from shared.figures import Provenance
from shared.io import save_tensors, write_json
from shared.runtime import pick_device, seed_everything, set_threads

WRITEUP = "toy_models"  # the write-up's name (as in config.py, not imported: it loads every part)


def parser(description: str, training: bool) -> argparse.ArgumentParser:
    """--profile and --threads (and --checkpoint-dir for training scripts)."""
    return script_parser(description, checkpoints=training)


def load_config(profile: str) -> Any:
    # Imported here so `--help` works without loading every part's module.
    from replications.toy_models.config import load

    return load(profile)


def open_inputs(p: argparse.ArgumentParser, argv: list[str] | None,
                ) -> tuple[argparse.Namespace, Any, torch.device]:
    """A model script's start: the arguments, the profile's configuration, then threads, seeds
    and the device."""
    args = p.parse_args(argv)
    cfg = load_config(args.profile)
    return args, cfg, setup(cfg, args.threads)


def setup(cfg: Any, threads: int) -> torch.device:
    """Threads, seeds and device for a script."""
    set_threads(threads)
    seed_everything(cfg.seed)
    return pick_device(cfg.device)


def provenance(profile: str, section: Any) -> Provenance:
    return Provenance.make(WRITEUP, profile, config_hash(section))


def remove_finished(checkpoint_dir: Path, prefix: str) -> None:
    """Delete this step's kept finished models (`<prefix>*.done.safetensors`) once its outputs
    are written: they only serve reruns after a crash."""
    for path in sorted(Path(checkpoint_dir).glob(f"{prefix}*.done.safetensors")):
        path.unlink(missing_ok=True)


def output_metadata(profile: str, section: Any) -> dict[str, str]:
    """Safetensors metadata of an output: where it came from."""
    return {"writeup": WRITEUP, "profile": profile, "config_hash": config_hash(section)}


def study_parser(description: str) -> argparse.ArgumentParser:
    """An SAE-on-TMS study's options: the training ones, --out (results) and --weights."""
    return add_paths(parser(description, training=True), out="results (.json)",
                     weights="TMS W and SAE decoders")


def save_study(args: argparse.Namespace, section: Any, results: dict[str, Any],
               weights: dict[str, torch.Tensor], prefix: str) -> None:
    """An SAE-on-TMS study's outputs (--weights with where they came from, --out), then its
    kept finished models (`<prefix>*`) go."""
    save_tensors(args.weights, weights, output_metadata(args.profile, section))
    write_json(args.out, results)
    remove_finished(args.checkpoint_dir, prefix)


def write_metrics(path: Path, metrics: dict[str, Any], tag: str) -> None:
    """A figures script's metrics JSON, each metric also printed as `[tag] name = value`."""
    write_json(path, metrics)
    for k, v in metrics.items():
        print(f"[{tag}] {k} = {v:.4g}")
