"""Live training logs: a checkpointed training run appends every logged row, and its throughput,
to a DVCLive folder while it runs, so a long run can be watched before its rule finishes.

The folder sits beside the run's checkpoint (`<checkpoint dir>/live/<checkpoint stem>/`, for
example `results/default/checkpoints/monosemanticity/live/sae_main/`) and outlives it: after the
run it holds the whole curve with the wall-clock throughput of this machine, which the
deterministic outputs leave out. `dvc plots show <folder>/plots/metrics` draws it, and
`<folder>/metrics.json` holds the latest row. Each start rewrites the folder: a resumed run first
logs the history its checkpoint restored (without throughput), then goes on. Watching a run:
`tail -f <folder>/plots/metrics/loss.tsv`.

The byte-stable record of the same curves (no timings) is the `training_curves` rule's output
(shared/curves.py), which DVC tracks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

THROUGHPUT_PREFIX = "throughput"


def live_dir(checkpoint_path: Path) -> Path:
    """Where a run checkpointed at `checkpoint_path` logs live."""
    return checkpoint_path.parent / "live" / checkpoint_path.stem


class LiveLog:
    """DVCLive logger for one run; `row` after each logged step, `close` at the end.

    `per_step` names what one step consumes and how many (("tokens", 4096)): the throughput is
    logged as `throughput/<unit>_per_s` beside `throughput/steps_per_s`.
    """

    def __init__(self, folder: Path, per_step: tuple[str, int] | None) -> None:
        # dvclive takes about a second to import: only runs that log live pay it.
        from dvclive import Live

        self.folder = folder
        self._live: Any = Live(str(folder), save_dvc_exp=False, dvcyaml=None, report=None)
        self._per_step = per_step
        self._last: tuple[int, float] | None = None

    def start(self, step: int, restored: list[dict[str, float]]) -> None:
        """Log the rows a checkpoint restored, then start the throughput clock at `step` (the
        first step this process runs)."""
        for row in restored:
            self._log(int(row["step"]), row, {})
        self._last = (step, time.perf_counter())

    def row(self, step: int, metrics: Mapping[str, float]) -> None:
        """Log one history row (after step `step` ran) with the throughput since the last."""
        now, rates = time.perf_counter(), {}
        if self._last is not None and step + 1 > self._last[0] and now > self._last[1]:
            steps_per_s = (step + 1 - self._last[0]) / (now - self._last[1])
            rates[f"{THROUGHPUT_PREFIX}/steps_per_s"] = steps_per_s
            if self._per_step is not None:
                unit, n = self._per_step
                rates[f"{THROUGHPUT_PREFIX}/{unit}_per_s"] = steps_per_s * n
        self._last = (step + 1, now)
        self._log(step, metrics, rates)

    def _log(self, step: int, metrics: Mapping[str, float], rates: Mapping[str, float]) -> None:
        self._live.step = step
        for name, value in {**metrics, **rates}.items():
            if name != "step":
                self._live.log_metric(name, value, timestamp=True)
        self._live.next_step()

    def close(self) -> None:
        self._live.end()


def open_live(checkpoint_path: Path | None, per_step: tuple[str, int] | None) -> LiveLog | None:
    """The run's live log, or None for a run without a checkpoint (library calls, tests)."""
    if checkpoint_path is None:
        return None
    return LiveLog(live_dir(Path(checkpoint_path)), per_step)
