"""Entry point wrapper for pipeline scripts: bad config or a missing input is one line, exit 1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NoReturn, TypeVar

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
        fail(err)
    set_threads(threads)
    seed_everything(seed(cfg) if callable(seed) else seed)
    return cfg


def run(main: Callable[[], None]) -> None:
    """Call `main()`; report ConfigError and missing files as `error: ...` without a traceback."""
    try:
        main()
    except (ConfigError, FileNotFoundError) as err:
        fail(err)


def fail(err: BaseException | str, label: str = "error") -> NoReturn:
    """The one way a script or the Snakefile stops on a user error: one line
    `<label>: <message>` on stderr (no traceback), exit status 1."""
    print(f"{label}: {err}", file=sys.stderr)
    raise SystemExit(1)
