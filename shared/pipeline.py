"""The pipeline registry: which write-ups exist and what each one's DAG ends in.

The Snakefile and the DVC generator (`shared.dvc_gen`) both read this, so the two cannot name
different figures. Each write-up package exposes `pipeline.FIGURES` (figure name -> one-line
description); its Snakemake rules make `results/<profile>/<writeup>/figures/<name>.png|pdf`
and `results/<profile>/<writeup>/metrics.json`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

# Write-ups in the order their rules are included; a new write-up adds its package name here.
WRITEUPS: tuple[str, ...] = ("toy_models", "monosemanticity", "fact_finding", "local_processing",
                             "steering")

# Rule-name prefix of each write-up.
PREFIX: dict[str, str] = {"toy_models": "toy", "monosemanticity": "mono", "fact_finding": "ff",
                          "local_processing": "local", "steering": "steer"}

# Write-ups whose results another write-up reads (local processing studies the fact-finding
# stand-in): their results folders become DVC dependencies of the reader's stage.
USES: dict[str, tuple[str, ...]] = {"local_processing": ("fact_finding",)}

ROOT = Path(__file__).resolve().parent.parent


def figures(writeup: str) -> dict[str, str]:
    """Figure name -> description for one write-up."""
    return dict(importlib.import_module(f"replications.{writeup}.pipeline").FIGURES)


def results_dir(profile: str, writeup: str) -> str:
    return f"results/{profile}/{writeup}"


def figure_paths(profile: str, writeup: str, ext: str = "png") -> list[str]:
    return [f"{results_dir(profile, writeup)}/figures/{n}.{ext}" for n in figures(writeup)]


def metrics_path(profile: str, writeup: str) -> str:
    return f"{results_dir(profile, writeup)}/metrics.json"


def claims_path(writeup: str) -> str:
    return f"replications/{writeup}/claims.yaml"


SCORECARD_DIR = "results/{profile}/scorecard"


def fail(err: Exception) -> None:
    """Stop Snakefile parsing with a one-line error (no traceback) before any job runs."""
    import sys

    print(f"config error: {err}", file=sys.stderr)
    sys.exit(1)


def load_writeup_config(module, profile: str):  # noqa: ANN001, ANN201 (called from Snakefiles)
    """Validate a write-up's configuration at parse time, before any job runs."""
    from shared.config import ConfigError

    try:
        return module.load(profile)
    except ConfigError as err:
        fail(err)
