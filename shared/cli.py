"""Entry point wrapper for pipeline scripts: bad config or a missing input is one line, exit 1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, TypeVar

from shared.config import PROFILES, ConfigError

T = TypeVar("T")


def script_parser(description: str, checkpoints: bool = False) -> argparse.ArgumentParser:
    """The arguments every pipeline script takes: --profile, --threads (and --checkpoint-dir)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--profile", required=True, choices=PROFILES)
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1 is fastest for small models on 2 cores)")
    if checkpoints:
        p.add_argument("--checkpoint-dir", type=Path, required=True,
                       help="where resumable checkpoints live (not a pipeline output)")
    return p


def load_and_setup(load: Callable[[str], T], profile: str, threads: int,
                   seed: Callable[[T], int] | int = 0) -> T:
    """A write-up's validated configuration for `profile` (a bad one is one `error:` line and
    exit 1), then threads and seeds (`seed` is a number or read from the configuration)."""
    from shared.runtime import seed_everything, set_threads

    try:
        cfg = load(profile)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    set_threads(threads)
    seed_everything(seed(cfg) if callable(seed) else seed)
    return cfg


def run(main: Callable[[], None]) -> None:
    """Call `main()`; report ConfigError, missing or unreadable input files and a diverged
    training run as `error: ...` (exit 1), and a stop by SIGINT/SIGTERM (the checkpoint is saved) as one
    `stopped: ...` line (exit 130), all without a traceback."""
    from shared.io import BadInput
    from shared.training import TrainingDiverged

    try:
        main()
    except (ConfigError, FileNotFoundError, BadInput, TrainingDiverged) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt as err:
        print(f"stopped: {err or 'interrupted'}", file=sys.stderr)
        raise SystemExit(130) from None
