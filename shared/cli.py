"""Entry point wrapper for pipeline scripts: bad config or a missing input is one line, exit 1."""

from __future__ import annotations

import sys
from typing import Callable

from shared.config import ConfigError


def run(main: Callable[[], None]) -> None:
    """Call `main()`; report ConfigError and missing files as `error: ...` without a traceback."""
    try:
        main()
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
