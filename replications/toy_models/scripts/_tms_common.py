"""Helpers shared by the TMS / SAE-on-TMS scripts: arguments, config, threads, provenance."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from shared.config import config_hash
from shared.figures import Provenance
from shared.runtime import pick_device, seed_everything, set_threads

WRITEUP = "toy_models"


def parser(description: str, training: bool) -> argparse.ArgumentParser:
    """An argument parser with --profile (and --threads / --checkpoint-dir for training)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--profile", required=True, choices=("smoke", "default", "paper"))
    if training:
        p.add_argument("--checkpoint-dir", type=Path, required=True,
                       help="where resumable checkpoints live (not a pipeline output)")
        p.add_argument("--threads", type=int, default=1,
                       help="torch intra-op threads (1 is fastest for these tiny models)")
    return p


def load_config(profile: str) -> Any:
    # Imported here so `--help` works without loading every part's module.
    from replications.toy_models.config import load

    return load(profile)


def setup(cfg: Any, threads: int) -> torch.device:
    """Threads, seeds and device for a training script."""
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
