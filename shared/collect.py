"""Collect built figures into figures/<write-up>/ and the scorecard into figures/.

    python -m shared.collect --profile P --out figures FILE...

Files under results/<profile>/<write-up>/figures/ go to <out>/<write-up>/ when the write-up's
manifest (writeup.yaml) declares the figure, as does its training-curves figure
(results/<profile>/<write-up>/curves/training_curves.*) and feature dashboard
(results/<profile>/<write-up>/dashboard/dashboard.html); scorecard files
(results/<profile>/scorecard/, the report among them) go to <out>/ itself.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from shared import pipeline
from shared.cli import run


def destination(src: Path, out: Path, profile: str) -> Path:
    """Where one built file lands under `out`."""
    parts = src.parts
    if len(parts) >= 3 and parts[0] == "results" and parts[1] == profile:
        if parts[2] == "scorecard":
            return out / src.name
        if (len(parts) == 5 and parts[3] == "figures" and parts[2] in pipeline.WRITEUPS
                and src.stem in pipeline.figures(parts[2])):
            return out / parts[2] / src.name
        if (len(parts) == 5 and parts[3] == "curves" and parts[2] in pipeline.WRITEUPS
                and src.stem == "training_curves"):
            return out / parts[2] / src.name
        if (len(parts) == 5 and parts[3] == "dashboard" and parts[2] in pipeline.WRITEUPS
                and src.name == "dashboard.html"):
            return out / parts[2] / src.name
    raise ValueError(f"{src}: not a declared figure or a scorecard file of profile {profile!r}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Collect figures into one folder.")
    ap.add_argument("--profile", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args(argv)
    for src in args.files:
        dst = destination(src, args.out, args.profile)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    print(f"collected {len(args.files)} files into {args.out}/")


if __name__ == "__main__":
    run(main)
