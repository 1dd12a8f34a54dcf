"""One figure style for every write-up, and byte-stable PNG + PDF saving with provenance.

`save_figure` writes `<name>.png` and `<name>.pdf` side by side. Both carry the git commit,
profile and config hash in their metadata and contain no timestamps, so rerunning a rule gives
byte-identical files and DVC hashes stay put.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Colour-blind-safe palette (Okabe & Ito), used for categorical series everywhere.
PALETTE: tuple[str, ...] = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
)

STYLE: dict[str, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.prop_cycle": matplotlib.rcsetup.cycler(color=list(PALETTE)),
    "image.cmap": "viridis",
    "pdf.fonttype": 42,  # embed TrueType so text stays editable in the PDF
    "svg.hashsalt": "replications",
    "path.simplify": False,
}


def apply_style() -> None:
    """Set the shared matplotlib style (call once per script before plotting)."""
    # matplotlib types rcParams keys as one Literal of every key; STYLE is a plain dict.
    plt.rcParams.update(STYLE)  # type: ignore[arg-type]


def git_commit(repo: Path | None = None) -> str:
    """The commit of the checkout (with -dirty when tracked files changed), or 'unknown'."""
    env_commit = os.environ.get("REPLICATION_GIT_COMMIT")
    if env_commit:
        return env_commit
    cwd = repo or Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=cwd, capture_output=True, text=True, check=True, timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a figure came from: written into PNG text chunks and PDF info."""

    writeup: str
    profile: str
    config_hash: str
    commit: str

    @classmethod
    def make(cls, writeup: str, profile: str, config_hash: str) -> "Provenance":
        return cls(writeup=writeup, profile=profile, config_hash=config_hash, commit=git_commit())

    def as_text(self) -> str:
        return (
            f"writeup={self.writeup}; profile={self.profile}; "
            f"config={self.config_hash}; commit={self.commit}"
        )


def save_figure(fig: plt.Figure, png_path: Path, provenance: Provenance) -> tuple[Path, Path]:
    """Save `fig` as PNG and PDF (same stem), deterministic bytes, provenance in metadata."""
    png_path = Path(png_path)
    if png_path.suffix != ".png":
        raise ValueError(f"figure path must end in .png, got {png_path}")
    png_path.parent.mkdir(parents=True, exist_ok=True)
    pdf_path = png_path.with_suffix(".pdf")
    text = provenance.as_text()
    fig.savefig(
        png_path, format="png",
        metadata={"Software": None, "Title": png_path.stem, "Description": text},
    )
    fig.savefig(
        pdf_path, format="pdf",
        metadata={
            "Creator": None, "Producer": None, "CreationDate": None, "ModDate": None,
            "Title": png_path.stem, "Subject": text,
        },
    )
    plt.close(fig)
    return png_path, pdf_path



def save_writeup_figures(writeup: str, figures: dict[str, plt.Figure], figure_dir: Path,
                         provenance: Provenance) -> None:
    """Save a write-up's figures (PNG + PDF) into `figure_dir`, refusing a set that differs
    from the figures its manifest (writeup.yaml) declares; one `[figures]` line on stderr."""
    from shared import pipeline

    declared = set(pipeline.figures(writeup))
    if set(figures) != declared:
        raise ValueError(f"{writeup}: plots made {sorted(figures)}, the manifest declares "
                         f"{sorted(declared)}")
    for name, fig in figures.items():
        save_figure(fig, Path(figure_dir) / f"{name}.png", provenance)
    print(f"[figures] {len(figures)} figures -> {figure_dir}", file=sys.stderr)


def read_png_provenance(png_path: Path) -> str:
    """The provenance text stored in a PNG written by `save_figure`."""
    from PIL import Image

    with Image.open(png_path) as img:
        return str(img.info.get("Description", ""))
