"""Helpers shared by the Tracr scripts: argument parsing, config loading, threads."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shared.runtime import seed_everything, set_threads


def parser(description: str, training: bool) -> argparse.ArgumentParser:
    """An argument parser with --profile, --threads (and --checkpoint-dir when training)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--profile", required=True, choices=("smoke", "default", "paper"))
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1 is usually fastest for these tiny models)")
    if training:
        p.add_argument("--checkpoint-dir", type=Path, required=True,
                       help="where resumable checkpoints live (not a pipeline output)")
    return p


def load_config(profile: str) -> Any:
    # Imported here so `--help` works without importing every part's module.
    from replications.toy_models.config import load

    return load(profile)


def setup(seed: int, threads: int) -> None:
    """Threads and seeds (all Tracr work runs on the CPU: the models are tiny)."""
    set_threads(threads)
    seed_everything(seed)
