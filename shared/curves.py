"""Training curves: every training run's logged history as DVCLive logs and as one figure per
write-up.

Usage (the `training_curves` rule runs it):
    python -m shared.curves --writeup W --profile P --run NAME HISTORY[#KEY] [--run ...]
        --dvclive DIR --figure OUT.png

A run's history is the JSON its training rule writes: a list of rows (`{"step": 0, "loss":
...}`), a mapping of equal-length columns, or either under a key (`file.json#geometry.history`
picks a nested one). Each run becomes a DVCLive folder `DIR/<run>/` (metrics per step as TSV, no
timestamps, so the files are byte-stable and `dvc plots show` reads them), and the figure has
one panel per kind of metric the runs log (loss, L0, dead fraction, accuracy), one line per run.
Throughput is not in these files (they hold no timings): a checkpointed run's live log
(shared.live) has it per logged step, and each rule's benchmark file has its wall time.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt

from shared.cli import fail, run
from shared.config import check_profile
from shared.figures import Provenance, apply_style, save_figure
from shared.io import BadInput, read_json

Rows = list[dict[str, float]]

# Panel -> the metric names it draws (first match per run wins the colour; others dashed).
PANELS: dict[str, re.Pattern[str]] = {
    "loss": re.compile(r"^(loss|val_loss|loss_mean)$"),
    "L0": re.compile(r"^(l0|eval/l0)$"),
    "dead fraction": re.compile(r"^(dead|dead_frac|eval/dead_frac)$"),
    "accuracy": re.compile(r"^(acc|acc_last|train_acc|test_acc|heldout_acc|accuracy)$"),
}


def _dig(obj: Any, key: str, where: str) -> Any:
    for part in key.split(".") if key else []:
        if not isinstance(obj, Mapping) or part not in obj:
            raise BadInput(f"{where}: no key {key!r}")
        obj = obj[part]
    return obj


def rows_of(obj: Any, where: str) -> Rows:
    """A history as rows with a `step`: from rows, columns, or either under `history`."""
    if isinstance(obj, Mapping) and "history" in obj:
        return rows_of(obj["history"], where)
    if isinstance(obj, list) and all(isinstance(r, Mapping) for r in obj):
        rows = [{k: float(v) for k, v in r.items() if isinstance(v, (int, float))} for r in obj]
    elif isinstance(obj, Mapping) and obj and all(isinstance(v, list) for v in obj.values()):
        lengths = {len(v) for v in obj.values()}
        if len(lengths) != 1:
            raise BadInput(f"{where}: history columns of different lengths {sorted(lengths)}")
        keys = [k for k, v in obj.items() if all(isinstance(x, (int, float)) for x in v)]
        rows = [{k: float(obj[k][i]) for k in keys} for i in range(lengths.pop())]
    else:
        raise BadInput(f"{where}: not a training history (rows or columns)")
    if not rows or any("step" not in r for r in rows):
        raise BadInput(f"{where}: a history needs a 'step' in every row")
    return rows


def load_run(spec: str) -> Rows:
    """`path[#dotted.key]` -> rows."""
    path, _, key = spec.partition("#")
    return rows_of(_dig(read_json(Path(path)), key, spec), spec)


def write_dvclive(runs: Mapping[str, Rows], out: Path) -> None:
    """One DVCLive folder per run under `out`, every metric per step, without timestamps."""
    from dvclive import Live

    for name, rows in runs.items():
        with Live(str(out / name), save_dvc_exp=False, dvcyaml=None, report=None) as live:
            for row in rows:
                live.step = int(row["step"])
                for metric, value in row.items():
                    if metric != "step":
                        live.log_metric(metric, value, timestamp=False)
                live.next_step()


def curves_figure(runs: Mapping[str, Rows], title: str) -> plt.Figure:
    """One panel per kind of metric any run logs; one colour per run."""
    apply_style()
    panels = [p for p, pat in PANELS.items()
              if any(pat.match(m) for rows in runs.values() for r in rows for m in r)]
    if not panels:
        raise BadInput(f"{title}: no run logs a loss, L0, dead fraction or accuracy")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes[0], panels, strict=True):
        for i, (name, rows) in enumerate(runs.items()):
            metrics = sorted({m for r in rows for m in r if PANELS[panel].match(m)})
            for j, metric in enumerate(metrics):
                pts = [(r["step"], r[metric]) for r in rows if metric in r]
                ax.plot(*zip(*pts), color=colours[i % len(colours)], lw=1.2,
                        ls="-" if j == 0 else "--",
                        label=name if len(metrics) == 1 else f"{name}: {metric}")
        ax.set_title(panel)
        ax.set_xlabel("step")
        if panel == "loss" and all(v > 0 for rows in runs.values() for r in rows
                                   for m, v in r.items() if PANELS[panel].match(m)):
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writeup", required=True)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--run", nargs=2, action="append", metavar=("NAME", "HISTORY"), required=True)
    ap.add_argument("--dvclive", type=Path, required=True)
    ap.add_argument("--figure", type=Path, required=True)
    args = ap.parse_args(argv)
    profile = check_profile(args.profile)
    names = [n for n, _ in args.run]
    if len(set(names)) != len(names):
        fail(f"--run: a run name given twice ({names})")
    runs = {name: load_run(spec) for name, spec in args.run}
    write_dvclive(runs, args.dvclive)
    fig = curves_figure(runs, f"{args.writeup}: training curves ({profile})")
    save_figure(fig, args.figure, Provenance.make(args.writeup, profile, "-"))
    print(f"training curves ({args.writeup}, {profile}): {len(runs)} runs -> {args.figure}")


if __name__ == "__main__":
    run(main)
