"""The command-line convention of every pipeline script, and the one way it fails.

A script's `main(argv)` builds its parser with `script_parser` (--profile, --threads, and
--checkpoint-dir for training) and `add_paths` (its files), reads its inputs inside
`with user_errors():`, calls one function of its write-up and saves;
`if __name__ == "__main__": run(main)`. What it has to say goes to stderr through `log`, one
line named by the script (`[fact_finding.neuron_lookup] ...`). A user error (bad settings, a missing or malformed
input) ends it with one `error: ...` line on stderr and exit status 1 (`fail`); anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Callable, Iterator, NoReturn, TypeVar

from shared.config import ConfigError, check_profile
from shared.corpus import CorpusSourceError

T = TypeVar("T")

# What a user can cause while a script reads its settings and inputs (CorpusSourceError: a
# corpus source that is not installed).
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, FileNotFoundError, ValueError, KeyError,
                                            CorpusSourceError)


def profile_arg(value: str) -> str:
    """argparse type of --profile: a profile or a seed variant, else argparse's one-line error."""
    try:
        return check_profile(value)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def script_parser(description: str, checkpoints: bool = False) -> argparse.ArgumentParser:
    """The arguments every pipeline script takes: --profile, --threads (and --checkpoint-dir)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--profile", required=True, type=profile_arg,
                   help="smoke, default, paper, or a seed variant <profile>-seed<k>")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1 is fastest for small models on 2 cores)")
    if checkpoints:
        p.add_argument("--checkpoint-dir", type=Path, required=True,
                       help="where resumable checkpoints live (not a pipeline output)")
    return p


def add_paths(p: argparse.ArgumentParser, *names: str,
              **helped: str | None) -> argparse.ArgumentParser:
    """Add a required path option for each name, then for each keyword (with its help text),
    in order; a name is the option's dest (`figure_dir` is --figure-dir). Returns `p`."""
    for name, text in [*((n, None) for n in names), *helped.items()]:
        p.add_argument("--" + name.replace("_", "-"), type=Path, required=True, help=text)
    return p


def parse_and_setup(p: argparse.ArgumentParser, argv: list[str] | None,
                    setup: Callable[[str, int], T]) -> tuple[argparse.Namespace, T]:
    """The parsed arguments and what the write-up's `setup(profile, threads)` makes of them
    (its configuration, with threads and seeds set)."""
    args = p.parse_args(argv)
    return args, setup(args.profile, args.threads)


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
    """Call `main()`; report ConfigError, missing or unreadable input files and a diverged
    training run as `error: ...` (exit 1), and a stop by SIGINT/SIGTERM (the checkpoint is
    saved) as one `stopped: ...` line (exit 130), all without a traceback."""
    from shared.io import BadInput
    from shared.training import TrainingDiverged

    try:
        main()
    except (ConfigError, FileNotFoundError, BadInput, TrainingDiverged) as err:
        fail(err)
    except KeyboardInterrupt as err:
        fail(err or "interrupted", label="stopped", status=130)


def script_name(module: str) -> str:
    """The name `log` gives a script module: `replications.<w>.scripts.<s>` is `<w>.<s>`."""
    parts = [p for p in module.split(".") if p not in ("replications", "scripts")]
    return ".".join(parts)


def log(message: str) -> None:
    """One line of a script's report on stderr, `[<write-up>.<script>] message` (stdout stays
    free for data); the name comes from the calling module, so `python -m` and a test that
    calls `main` directly name it alike."""
    spec = sys._getframe(1).f_globals.get("__spec__")
    name = script_name(spec.name) if spec is not None else Path(sys.argv[0]).stem
    print(f"[{name}] {message}", file=sys.stderr)


def fail(err: BaseException | str, label: str = "error", status: int = 1) -> NoReturn:
    """The one way a script or the Snakefile stops on a user error: one line
    `<label>: <message>` on stderr (no traceback), exit status 1 (130 for a stop by signal)."""
    print(f"{label}: {err}", file=sys.stderr)
    raise SystemExit(status)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Around reading settings and inputs: a user error there ends the script with one line."""
    try:
        yield
    except USER_ERRORS as err:
        fail(err)
